/* SPDX-License-Identifier: MIT */
/* The cffi cdef of lightws.h: values are "..." and structs end in "...;",
 * so the C compiler checks every declaration against the real header. */

#define LIGHTWS_FRAME_HEADER_MAX ...
#define LIGHTWS_CONTROL_MAX ...
#define LIGHTWS_DECODE_EXPECT_MASKED ...
#define LIGHTWS_DECODE_EXPECT_UNMASKED ...
#define LIGHTWS_DECODE_ALLOW_RSV1 ...
#define LIGHTWS_DECODE_ALLOW_RSV2 ...
#define LIGHTWS_DECODE_ALLOW_RSV3 ...
#define LIGHTWS_DECODE_ALLOW_NONMINIMAL ...
#define LIGHTWS_UTF8_VALID ...
#define LIGHTWS_UTF8_INCOMPLETE ...
#define LIGHTWS_KEY_LEN ...
#define LIGHTWS_ACCEPT_LEN ...
#define LIGHTWS_HANDSHAKE_HEAD_MAX ...
#define LIGHTWS_HANDSHAKE_HEADERS_MAX ...
#define LIGHTWS_OPT_DIRECT ...
#define LIGHTWS_OPT_NO_UTF8_CHECK ...
#define LIGHTWS_OPT_NO_AUTO_PONG ...
#define LIGHTWS_OPT_NO_MASK_CHECK ...
#define LIGHTWS_DEFAULT_MAX_FRAME ...
#define LIGHTWS_DEFAULT_MAX_MESSAGE ...
#define LIGHTWS_RBUF_MIN ...
#define LIGHTWS_SEND_FRAGMENT ...
#define LIGHTWS_SEND_MASK_IN_PLACE ...
#define LIGHTWS_SEND_NO_COMPRESS ...
#define LIGHTWS_PMD_BITS_BARE ...
#define LIGHTWS_PMD_DEFAULT_WINDOW_BITS ...
#define LIGHTWS_PMD_DEFAULT_MEM_LEVEL ...
#define LIGHTWS_PMD_DEFAULT_LEVEL ...
#define LIGHTWS_PMD_DEFAULT_THRESHOLD ...
#define LIGHTWS_PMD_DEFAULT_WORK_SIZE ...
#define LIGHTWS_WANT_READ ...
#define LIGHTWS_WANT_WRITE ...
#define LIGHTWS_VERSION_MAJOR ...
#define LIGHTWS_VERSION_MINOR ...
#define LIGHTWS_VERSION_PATCH ...
#define LIGHTWS_NO_DEADLINE ...

const char *lightws_version(void);

/* Errors */
enum lightws_error {
  LIGHTWS_OK,
  LIGHTWS_ERR_INCOMPLETE, LIGHTWS_ERR_NOSPACE, LIGHTWS_ERR_INVALID,
  LIGHTWS_ERR_WOULDBLOCK, LIGHTWS_ERR_CLOSED, LIGHTWS_ERR_EOF,
  LIGHTWS_ERR_SYSTEM, LIGHTWS_ERR_BUSY,
  LIGHTWS_ERR_HANDSHAKE_TIMEOUT, LIGHTWS_ERR_IDLE_TIMEOUT,
  LIGHTWS_ERR_PING_TIMEOUT, LIGHTWS_ERR_CLOSE_TIMEOUT,
  LIGHTWS_ERR_BUFFER_TOO_SMALL,
  LIGHTWS_ERR_RESERVED_OPCODE, LIGHTWS_ERR_RESERVED_BITS,
  LIGHTWS_ERR_FRAGMENTED_CONTROL, LIGHTWS_ERR_CONTROL_TOO_LONG,
  LIGHTWS_ERR_LENGTH_TOP_BIT, LIGHTWS_ERR_NONMINIMAL_LENGTH,
  LIGHTWS_ERR_MASK_REQUIRED, LIGHTWS_ERR_MASK_UNEXPECTED,
  LIGHTWS_ERR_UNEXPECTED_CONTINUATION, LIGHTWS_ERR_EXPECTED_CONTINUATION,
  LIGHTWS_ERR_CLOSE_PAYLOAD, LIGHTWS_ERR_CLOSE_CODE,
  LIGHTWS_ERR_DATA_AFTER_CLOSE, LIGHTWS_ERR_UTF8,
  LIGHTWS_ERR_FRAME_TOO_BIG, LIGHTWS_ERR_MESSAGE_TOO_BIG,
  LIGHTWS_ERR_HTTP_MALFORMED, LIGHTWS_ERR_HTTP_METHOD,
  LIGHTWS_ERR_HTTP_VERSION, LIGHTWS_ERR_HEAD_TOO_LARGE,
  LIGHTWS_ERR_TOO_MANY_HEADERS, LIGHTWS_ERR_NO_HOST,
  LIGHTWS_ERR_NO_UPGRADE, LIGHTWS_ERR_NO_CONNECTION, LIGHTWS_ERR_BAD_KEY,
  LIGHTWS_ERR_BAD_VERSION, LIGHTWS_ERR_BAD_STATUS, LIGHTWS_ERR_BAD_ACCEPT,
  LIGHTWS_ERR_BAD_PROTOCOL, LIGHTWS_ERR_BAD_EXTENSION,
  LIGHTWS_ERR_HEADER_INJECTION,
  LIGHTWS_ERR_UNSUPPORTED, LIGHTWS_ERR_BAD_RSV1, LIGHTWS_ERR_BAD_DEFLATE,
  LIGHTWS_ERR_BAD_EXTENSION_PARAMS, LIGHTWS_ERR_EXTENSION_DECLINED,
  ...
};
const char *lightws_strerror(int err);
const char *lightws_errname(int err);
int lightws_close_code(int err);
int lightws_http_status(int err);

/* Constants */
enum lightws_opcode {
  LIGHTWS_OPCODE_CONTINUATION, LIGHTWS_OPCODE_TEXT, LIGHTWS_OPCODE_BINARY,
  LIGHTWS_OPCODE_CLOSE, LIGHTWS_OPCODE_PING, LIGHTWS_OPCODE_PONG, ...
};
enum lightws_close_code {
  LIGHTWS_CLOSE_NORMAL, LIGHTWS_CLOSE_GOING_AWAY,
  LIGHTWS_CLOSE_PROTOCOL_ERROR, LIGHTWS_CLOSE_UNSUPPORTED_DATA,
  LIGHTWS_CLOSE_NO_STATUS, LIGHTWS_CLOSE_ABNORMAL,
  LIGHTWS_CLOSE_INVALID_DATA, LIGHTWS_CLOSE_POLICY_VIOLATION,
  LIGHTWS_CLOSE_MESSAGE_TOO_BIG, LIGHTWS_CLOSE_MANDATORY_EXTENSION,
  LIGHTWS_CLOSE_INTERNAL_ERROR, LIGHTWS_CLOSE_TLS_HANDSHAKE, ...
};
int lightws_close_code_valid(unsigned code);

/* Frame head codec (§5.2) */
struct lightws_frame {
  uint64_t length;
  uint8_t fin;
  uint8_t rsv;
  uint8_t opcode;
  uint8_t masked;
  uint8_t mask[4];
  uint8_t header_len;
  ...;
};
size_t lightws_frame_header_size(uint64_t length, int masked);
size_t lightws_frame_encode_unchecked(const struct lightws_frame *frame,
                                      uint8_t *out);
ssize_t lightws_frame_encode(const struct lightws_frame *frame, uint8_t *out,
                             size_t size);
ssize_t lightws_frame_decode(struct lightws_frame *frame, const uint8_t *in,
                             size_t len, unsigned flags);

/* Masking (§5.3) */
void lightws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                  uint64_t offset);
void lightws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                       const uint8_t key[4], uint64_t offset);

/* UTF-8 (§8.1) */
struct lightws_utf8 { ...; };
int lightws_utf8_feed(struct lightws_utf8 *u, const uint8_t *in, size_t len);

/* Handshake codec (§4) */
struct lightws_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
  ...;
};
struct lightws_request {
  struct lightws_header *headers;
  size_t max_headers;
  size_t num_headers;
  const char *method; size_t method_len;
  const char *path; size_t path_len;
  int http_minor;
  const char *host; size_t host_len;
  const char *key; size_t key_len;
  const char *origin; size_t origin_len;
  const char *protocol; size_t protocol_len;
  const char *extensions; size_t extensions_len;
  int version;
  size_t head_len;
  ...;
};
struct lightws_response {
  struct lightws_header *headers;
  size_t max_headers;
  size_t num_headers;
  int status;
  const char *reason; size_t reason_len;
  const char *accept; size_t accept_len;
  const char *protocol; size_t protocol_len;
  const char *extensions; size_t extensions_len;
  size_t head_len;
  ...;
};
int lightws_handshake_key(char *key);
void lightws_handshake_accept(const char *key, size_t key_len, char *accept);
ssize_t lightws_handshake_build_request(uint8_t *out, size_t size,
                                        const char *host, const char *path,
                                        const char *key,
                                        const char *protocols,
                                        const char *origin,
                                        const struct lightws_header *extra,
                                        size_t num_extra);
ssize_t lightws_handshake_parse_request(struct lightws_request *req,
                                        const uint8_t *in, size_t len,
                                        size_t max_head);
ssize_t lightws_handshake_build_response(uint8_t *out, size_t size,
                                         const char *key, size_t key_len,
                                         const char *protocol,
                                         const struct lightws_header *extra,
                                         size_t num_extra);
ssize_t lightws_handshake_build_error(uint8_t *out, size_t size, int status,
                                      const struct lightws_header *extra,
                                      size_t num_extra);
ssize_t lightws_handshake_parse_response(struct lightws_response *resp,
                                         const uint8_t *in, size_t len,
                                         size_t max_head, const char *key,
                                         const char *protocols);
int lightws_header_has_token(const struct lightws_header *headers, size_t n,
                             const char *name, const char *token);
const struct lightws_header *
lightws_header_find(const struct lightws_header *headers, size_t n,
                    const char *name);

/* Extensions: permessage-deflate (RFC 7692) */
struct lightws_pmd_params {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  uint8_t server_max_window_bits;
  uint8_t client_max_window_bits;
  ...;
};
struct lightws_pmd_config {
  uint8_t window_bits;
  uint8_t peer_window_bits;
  uint8_t mem_level;
  int8_t level;
  uint8_t no_context_takeover;
  uint8_t peer_no_context_takeover;
  uint8_t required;
  uint32_t threshold;
  uint32_t work_size;
  ...;
};
int lightws_pmd_available(void);
size_t lightws_pmd_mem_size(const struct lightws_pmd_config *cfg);
ssize_t lightws_pmd_offer(char *out, size_t size,
                          const struct lightws_pmd_config *cfg);
int lightws_pmd_accept(const char *value, size_t len,
                       const struct lightws_pmd_config *cfg,
                       struct lightws_pmd_params *agreed);
ssize_t lightws_pmd_response(char *out, size_t size,
                             const struct lightws_pmd_params *agreed);
int lightws_pmd_check_response(const char *value, size_t len,
                               const struct lightws_pmd_config *cfg,
                               struct lightws_pmd_params *agreed);
ssize_t lightws_handshake_parse_response_ext(
    struct lightws_response *resp, const uint8_t *in, size_t len,
    size_t max_head, const char *key, const char *protocols,
    const struct lightws_pmd_config *offered,
    struct lightws_pmd_params *agreed);

/* IO: a transport given as callbacks (used for TLS through Python's ssl) */
struct iovec { void *iov_base; size_t iov_len; ...; };
struct lightws_io {
  ssize_t (*read)(void *ctx, void *buf, size_t len);
  ssize_t (*writev)(void *ctx, const struct iovec *iov, int iovcnt);
  void *ctx;
  ...;
};
extern "Python" ssize_t lightws_py_read(void *ctx, void *buf, size_t len);
extern "Python" ssize_t lightws_py_writev(void *ctx, const struct iovec *iov,
                                          int iovcnt);

/* Stream */
enum lightws_role { LIGHTWS_SERVER, LIGHTWS_CLIENT, ... };
enum lightws_mask_mode { LIGHTWS_MASK_RANDOM, LIGHTWS_MASK_FIXED,
                         LIGHTWS_MASK_ZERO, ... };
struct lightws_stream { ...; };
struct lightws_chunk {
  const uint8_t *data;
  size_t len;
  uint8_t opcode;
  uint8_t frame_end;
  uint8_t message_end;
  uint8_t compressed;
  ...;
};
struct lightws_msg {
  const void *data;
  size_t len;
  int opcode;
  ...;
};
int lightws_stream_init(struct lightws_stream *s, enum lightws_role role,
                        int fd, uint8_t *rbuf, size_t rsize,
                        unsigned options);
void lightws_stream_set_io(struct lightws_stream *s,
                           const struct lightws_io *io);
int lightws_stream_set_mask_mode(struct lightws_stream *s,
                                 enum lightws_mask_mode mode);
void lightws_stream_set_limits(struct lightws_stream *s, uint32_t max_frame,
                               uint32_t max_message);
int lightws_stream_set_deflate(struct lightws_stream *s,
                               const struct lightws_pmd_params *agreed,
                               const struct lightws_pmd_config *cfg,
                               void *mem, size_t size);
int lightws_stream_deflate(const struct lightws_stream *s);
int lightws_stream_feed(struct lightws_stream *s, const uint8_t *in,
                        size_t len);
ssize_t lightws_stream_recv(struct lightws_stream *s,
                            struct lightws_chunk *out);
ssize_t lightws_stream_read(struct lightws_stream *s, void *buf, size_t size,
                            struct lightws_chunk *out);
ssize_t lightws_stream_read_bytes(struct lightws_stream *s, void *buf,
                                  size_t size);
ssize_t lightws_stream_send(struct lightws_stream *s, int opcode,
                            const void *buf, size_t len, unsigned flags);
ssize_t lightws_stream_write(struct lightws_stream *s, const void *buf,
                             size_t len);
ssize_t lightws_stream_sendv(struct lightws_stream *s,
                             const struct lightws_msg *msgs, size_t n);
int lightws_stream_ping(struct lightws_stream *s, const void *data,
                        size_t len);
int lightws_stream_pong(struct lightws_stream *s, const void *data,
                        size_t len);
int lightws_stream_close(struct lightws_stream *s, unsigned code,
                         const char *reason, size_t reason_len);
int lightws_stream_flush(struct lightws_stream *s);
int lightws_stream_want(const struct lightws_stream *s);
size_t lightws_stream_buffered(const struct lightws_stream *s);
unsigned lightws_stream_close_code(const struct lightws_stream *s);
const char *lightws_stream_close_reason(const struct lightws_stream *s,
                                        size_t *len);
const uint8_t *lightws_stream_pong_data(const struct lightws_stream *s,
                                        size_t *len);
int lightws_stream_closing(const struct lightws_stream *s);
int lightws_stream_error(const struct lightws_stream *s);

/* Time: handshake, idle, keepalive and close timeouts (milliseconds) */
struct lightws_timeouts {
  uint32_t handshake;
  uint32_t idle;
  uint32_t ping_interval;
  uint32_t ping_timeout;
  uint32_t close;
  ...;
};
uint64_t lightws_now(void);
int lightws_stream_set_timeouts(struct lightws_stream *s,
                                const struct lightws_timeouts *t,
                                uint64_t now);
uint64_t lightws_stream_deadline(const struct lightws_stream *s);
int lightws_stream_tick(struct lightws_stream *s, uint64_t now);
uint32_t lightws_stream_rtt(const struct lightws_stream *s);

/* Endpoint: the opening handshake */
struct lightws_client_options {
  const char *protocols;
  const char *origin;
  const struct lightws_header *headers;
  size_t num_headers;
  size_t max_head;
  const struct lightws_timeouts *timeouts;
  const struct lightws_pmd_config *deflate;
  void *deflate_mem;
  size_t deflate_mem_size;
  ...;
};
struct lightws_server_options {
  const char *protocols;
  size_t max_head;
  const struct lightws_timeouts *timeouts;
  const struct lightws_pmd_config *deflate;
  void *deflate_mem;
  size_t deflate_mem_size;
  ...;
};
int lightws_client_start(struct lightws_stream *s, const char *host,
                         const char *path,
                         const struct lightws_client_options *opt);
int lightws_client_handshake(struct lightws_stream *s,
                             struct lightws_response *resp);
const uint8_t *lightws_client_rejected_body(const struct lightws_stream *s,
                                            size_t *len);
int lightws_server_read_request(struct lightws_stream *s,
                                struct lightws_request *req,
                                size_t max_head);
int lightws_server_deflate(struct lightws_stream *s,
                           const struct lightws_request *req,
                           const struct lightws_pmd_config *cfg, void *mem,
                           size_t size);
int lightws_server_accept(struct lightws_stream *s, const char *protocol,
                          const struct lightws_header *extra,
                          size_t num_extra);
int lightws_server_reject(struct lightws_stream *s, int status,
                          const struct lightws_header *extra,
                          size_t num_extra);

/* Glue of _build.py for the lean paths (not part of lightws.h). */
int lightws_py_read_idle(const struct lightws_stream *s);
void lightws_py_detach(struct lightws_stream *s);
ssize_t lightws_py_recv(struct lightws_stream *s, struct lightws_chunk *c,
                        int *info);
int64_t lightws_py_clock(struct lightws_stream *s, int *rc);
struct lightws_py_mem {
  const uint8_t *in;
  size_t in_len;
  size_t in_pos;
  uint8_t *out;
  size_t out_cap;
  size_t out_len;
  ...;
};
void lightws_py_mem_attach(struct lightws_stream *s, struct lightws_py_mem *m);
