# TLS adapter (wss): liblightws-tls.{a,so} + lightws-tls.pc over OpenSSL 3,
# its own library so liblightws stays libc-only. On by default (needs
# libssl-dev, which `make deps` installs); `make TLS=0` skips it and its
# tests. Tests: test-tls (check
# suite in-process + interop against openssl s_server, python websockets
# and node ws over TLS), test-tls-asan, test-tls-valgrind.

TLS ?= 1

ifneq ($(TLS),0)

TLS_SRCS := $(wildcard lib/tls/*.c)
TLS_HDRS := lib/include/lightws_tls.h lib/include/lightws.h
TLS_OBJS := $(TLS_SRCS:lib/tls/%.c=$(BUILD)/obj/tls/%.o)
TLS_PIC_OBJS := $(TLS_SRCS:lib/tls/%.c=$(BUILD)/pic/tls/%.o)
SSL_CFLAGS := $(shell pkg-config --cflags openssl 2>/dev/null)
SSL_LIBS := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
TLS_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Ilib/include $(SSL_CFLAGS) $(CFLAGS)

.PHONY: tls-lib install-tls uninstall-tls test-tls test-tls-check test-tls-interop test-tls-asan test-tls-valgrind

lib: tls-lib
tls-lib: $(BUILD)/liblightws-tls.a $(BUILD)/liblightws-tls.so $(BUILD)/lightws-tls.pc

$(BUILD)/obj/tls/%.o: lib/tls/%.c $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_CFLAGS) -c $< -o $@

$(BUILD)/pic/tls/%.o: lib/tls/%.c $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/liblightws-tls.a: $(TLS_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/liblightws-tls.so: $(TLS_PIC_OBJS) $(BUILD)/liblightws.so
	$(CC) -shared -Wl,-soname,liblightws-tls.so.$(SOVERSION) -o $(BUILD)/liblightws-tls.so.$(VERSION) \
	  $(TLS_PIC_OBJS) -L$(BUILD) -llightws $(SSL_LIBS) $(ZLIB_LIBS)
	ln -sf liblightws-tls.so.$(VERSION) $(BUILD)/liblightws-tls.so.$(SOVERSION)
	ln -sf liblightws-tls.so.$(VERSION) $@

write_tls_pc = printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: lightws-tls\nDescription: TLS (OpenSSL 3) transport for lightws streams (wss)\nVersion: %s\nRequires: lightws\nRequires.private: openssl\nLibs: -L$${libdir} -llightws-tls\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(LIBDIR)' '$(INCLUDEDIR)' '$(VERSION)' > $(1)

$(BUILD)/lightws-tls.pc: mk/tls.mk
	@mkdir -p $(@D)
	$(call write_tls_pc,$@)

install: install-tls
install-tls: tls-lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 644 lib/include/lightws_tls.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/liblightws-tls.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/liblightws-tls.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf liblightws-tls.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblightws-tls.so.$(SOVERSION)
	ln -sf liblightws-tls.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblightws-tls.so
	$(call write_tls_pc,$(DESTDIR)$(LIBDIR)/pkgconfig/lightws-tls.pc)

uninstall: uninstall-tls
uninstall-tls:
	rm -f $(DESTDIR)$(INCLUDEDIR)/lightws_tls.h $(DESTDIR)$(LIBDIR)/liblightws-tls.* \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/lightws-tls.pc

# --- tests ---------------------------------------------------------------
TLS_TEST_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Wno-missing-prototypes \
  -Ilib/include -Itests/tls $(SSL_CFLAGS) $(CHECK_CFLAGS)
TLS_CERTS := $(BUILD)/tls/certs/.done

$(TLS_CERTS): tests/tls/make_certs.sh
	bash tests/tls/make_certs.sh $(BUILD)/tls/certs
	@touch $@

$(BUILD)/tls/check_tls: tests/tls/check_tls.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) $(CFLAGS) tests/tls/check_tls.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a \
	  $(SSL_LIBS) $(ZLIB_LIBS) $(CHECK_LIBS) -o $@

$(BUILD)/tls/tls_peer: tests/tls/tls_peer.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) $(CFLAGS) tests/tls/tls_peer.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a \
	  $(SSL_LIBS) $(ZLIB_LIBS) -o $@

$(BUILD)/asan/tls/check_tls: tests/tls/check_tls.c $(TLS_SRCS) $(LIB_SRCS) $(LIB_HDRS) $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -Ilib -O1 -g $(SAN) $(ZLIB_CFLAGS) tests/tls/check_tls.c $(TLS_SRCS) $(LIB_SRCS) \
	  $(SSL_LIBS) $(ZLIB_LIBS) $(CHECK_LIBS) -o $@

# W1/W3 over TLS 1.3 against a raw TLS pipe (not in TEST_TARGETS: timing).
$(BUILD)/tls/bench_tls: tests/tls/bench_tls.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -O2 $(CFLAGS) tests/tls/bench_tls.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a \
	  $(SSL_LIBS) $(ZLIB_LIBS) -o $@

.PHONY: bench-tls
bench-tls: $(BUILD)/tls/bench_tls $(TLS_CERTS)
	$(BUILD)/tls/bench_tls $(BUILD)/tls/certs $(or $(BENCH_ROUNDS),5)

# W1/W3 over TLS 1.3 (AES-128-GCM): lightws C against node ws and python
# websockets in the same round (bench/tls/run.py; not in TEST_TARGETS:
# timing). BENCH_TLS_ROUNDS, BENCH_TLS_SCALE (of bench/run.py's W1 1 GiB
# and W3 100,000 round trips), BENCH_TLS_RECORD=bench/tls/RESULTS.md,
# BENCH_TLS_PIN=0 (server and client on CPU 0; see bench/tls/RESULTS.md).
BENCH_TLS_ROUNDS ?= 3
BENCH_TLS_SCALE ?= 0.25
BENCH_TLS_RECORD ?=
BENCH_TLS_PIN ?=

$(BUILD)/tls/lightws-tls-bench: bench/tls/lightws_tls_bench.c bench/bench_common.c bench/bench_common.h \
  $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -O2 -Ilib/include -Ibench $(SSL_CFLAGS) \
	  $(CFLAGS) bench/tls/lightws_tls_bench.c bench/bench_common.c $(BUILD)/liblightws-tls.a $(BUILD)/liblightws.a \
	  $(SSL_LIBS) $(ZLIB_LIBS) -o $@

.PHONY: bench-tls-peers
bench-tls-peers: $(BUILD)/tls/lightws-tls-bench $(TLS_CERTS) $(BUILD)/pyws/speedups.so
	BENCH_TLS_CERTS=$(BUILD)/tls/certs NODE_PATH=$(CURDIR)/$(BUILD)/node/node_modules \
	  /usr/bin/python3 bench/tls/run.py --rounds $(BENCH_TLS_ROUNDS) --scale $(BENCH_TLS_SCALE) \
	  $(if $(BENCH_TLS_RECORD),--record $(BENCH_TLS_RECORD)) $(if $(BENCH_TLS_PIN),--pin $(BENCH_TLS_PIN))

test-tls: test-tls-check test-tls-interop

test-tls-check: $(BUILD)/tls/check_tls $(TLS_CERTS)
	LIGHTWS_TLS_CERTS=$(BUILD)/tls/certs $(BUILD)/tls/check_tls

test-tls-interop: $(BUILD)/tls/tls_peer $(TLS_CERTS)
	LIGHTWS_TLS_CERTS=$(BUILD)/tls/certs NODE_PATH=$(CURDIR)/$(BUILD)/node/node_modules \
	  bash tests/tls/run.sh $(BUILD)/tls/tls_peer

$(BUILD)/asan/tls/tls_peer: tests/tls/tls_peer.c $(TLS_SRCS) $(LIB_SRCS) $(LIB_HDRS) $(TLS_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TLS_TEST_CFLAGS) -Ilib -O1 -g $(SAN) $(ZLIB_CFLAGS) tests/tls/tls_peer.c $(TLS_SRCS) $(LIB_SRCS) \
	  $(SSL_LIBS) $(ZLIB_LIBS) -o $@

# the check suite and the interop peers under ASan+UBSan (a report makes
# the peer exit non-zero, so its case fails)
test-tls-asan: $(BUILD)/asan/tls/check_tls $(BUILD)/asan/tls/tls_peer $(TLS_CERTS)
	LIGHTWS_TLS_CERTS=$(BUILD)/tls/certs ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(BUILD)/asan/tls/check_tls
	LIGHTWS_TLS_CERTS=$(BUILD)/tls/certs NODE_PATH=$(CURDIR)/$(BUILD)/node/node_modules \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  bash tests/tls/run.sh $(BUILD)/asan/tls/tls_peer

test-tls-valgrind: $(BUILD)/tls/check_tls $(TLS_CERTS)
	LIGHTWS_TLS_CERTS=$(BUILD)/tls/certs LIGHTWS_TEST_QUICK=1 CK_FORK=no \
	  valgrind --error-exitcode=1 -q --leak-check=full $(BUILD)/tls/check_tls

TEST_TARGETS += test-tls test-tls-asan test-tls-valgrind

endif
