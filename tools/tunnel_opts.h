/* SPDX-License-Identifier: MIT */
/* lightws-tunnel's configuration: command line, kaminari option strings, SIP003. */
#ifndef LIGHTWS_TUNNEL_OPTS_H
#define LIGHTWS_TUNNEL_OPTS_H

#include <stddef.h>
#include <stdint.h>

enum tunnel_mode { TUNNEL_NONE = 0, TUNNEL_CLIENT, TUNNEL_SERVER };

struct tunnel_config {
  enum tunnel_mode mode;
  char listen_host[256];
  int listen_port;
  /* client: the websocket server; server: the TCP target */
  char peer_host[256];
  int peer_port;
  int have_peer;
  /* websocket */
  char http_host[300];    /* client: Host header (§4.1); "" = peer host:port */
  char path[1024];        /* client: request path; server: required path
                             ("" = any) */
  int tls;                /* client: wss; server: --tls-cert given */
  char sni[256];          /* client: TLS server name ("" = peer host) */
  const char *cafile;
  int insecure;
  const char *tls_cert, *tls_key;
  int mask;               /* enum lightws_mask_mode */
  /* time, milliseconds (0 = off) */
  uint32_t handshake_ms, idle_ms, ping_ms, pong_ms;
  int pong_set;
  char proxy_host[256];   /* client: HTTP CONNECT proxy; port 0: none */
  int proxy_port;
  int workers;
  int quiet;
  int sip003;             /* configured from the SS_* environment */
};

/* Parses "HOST:PORT" or "[V6]:PORT" (port 0..65535, `allow_zero` for
 * listeners). Returns 0, or -1 with a message in err. */
int tunnel_parse_hostport(const char *s, char *host, size_t hsize, int *port,
                          int allow_zero, char *err, size_t esize);

/* Applies a kaminari option string ("ws;host=a;path=/x;tls;sni=b;insecure;
 * mask=fixed", with '\' escaping ';', '=' and '\') to `c`. Unknown keys,
 * a missing "ws" and kaminari features lightws-tunnel lacks are errors.
 * Returns 0, or -1 with a message in err. */
int tunnel_parse_opts(struct tunnel_config *c, const char *opts, char *err,
                      size_t esize);

#endif
