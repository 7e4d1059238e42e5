# lightws-tunnel (tools/lightws-tunnel.c, issue 17): TCP over ws/wss and back,
# kaminari-compatible. `make test-tunnel` (in TEST_TARGETS) runs the end-to-end
# suite in tests/tunnel/ against the normal and the ASan+UBSan build;
# `make bench-tunnel` (not in TEST_TARGETS) measures it against direct TCP and
# a plain TCP relay (bench/tunnel/).

TUNNEL_SRCS := tools/lightws-tunnel.c tools/tunnel_opts.c tools/common.c
TUNNEL_HDRS := tools/tunnel_opts.h tools/common.h lib/include/lightws.h

tools: $(BUILD)/lightws-tunnel

$(BUILD)/lightws-tunnel: $(TUNNEL_SRCS) $(TUNNEL_HDRS) $(BUILD)/liblightws.a $(TOOL_TLS_DEPS)
	$(CC) $(TOOL_CFLAGS) $(TOOL_TLS_CFLAGS) $(TUNNEL_SRCS) $(TOOL_TLS_LIBS) $(BUILD)/liblightws.a $(TOOL_SSL_LIBS) $(ZLIB_LIBS) -o $@

# library, TLS layer (when built) and tool together under ASan+UBSan
$(BUILD)/asan/lightws-tunnel: $(TUNNEL_SRCS) $(TUNNEL_HDRS) $(LIB_SRCS) $(LIB_HDRS) $(if $(filter 0,$(TLS)),,lib/tls/tls_openssl.c lib/include/lightws_tls.h)
	@mkdir -p $(@D)
	$(CC) $(SAN_TOOL_CFLAGS) $(TOOL_TLS_CFLAGS) $(TUNNEL_SRCS) $(LIB_SRCS) \
	  $(if $(filter 0,$(TLS)),,$(wildcard lib/tls/*.c) $(SSL_LIBS)) $(ZLIB_LIBS) -o $@

TUNNEL_TEST_DEPS := $(BUILD)/lightws-tunnel $(BUILD)/asan/lightws-tunnel $(if $(filter 0,$(TLS)),,$(BUILD)/tls/certs/.done)
# the wss cases need the test PKI (tests/tls/make_certs.sh); TLS=0 skips them
TUNNEL_CERTS := $(if $(filter 0,$(TLS)),,--certs $(BUILD)/tls/certs)

.PHONY: test-tunnel bench-tunnel
test-tunnel: $(TUNNEL_TEST_DEPS)
	/usr/bin/python3 tests/tunnel/run.py --tool $(BUILD)/lightws-tunnel $(TUNNEL_CERTS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  /usr/bin/python3 tests/tunnel/run.py --quick --tool $(BUILD)/asan/lightws-tunnel $(TUNNEL_CERTS)

TEST_TARGETS += test-tunnel

$(BUILD)/bench/tcp_relay: bench/tunnel/tcp_relay.c
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -O2 $< -o $@

$(BUILD)/bench/tunnel_load: bench/tunnel/tunnel_load.c
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -O2 $< -o $@

bench-tunnel: $(BUILD)/lightws-tunnel $(BUILD)/bench/tcp_relay $(BUILD)/bench/tunnel_load
	/usr/bin/python3 bench/tunnel/run.py --build $(BUILD)
