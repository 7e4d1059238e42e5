# Command-line tools (lightws-echo, lightws-cat), the C demo client and `make demo`.
# With TLS (the default; mk/tls.mk) the tools link liblightws-tls and speak
# wss:// (client URLs, --tls-cert/--tls-key servers); `make TLS=0` builds
# them without, and they say "wss:// needs a build with TLS".

TOOL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ilib/include -Itools $(CFLAGS)
TOOL_COMMON := tools/common.c tools/common.h

ifneq ($(TLS),0)
TOOL_TLS_CFLAGS = -DLIGHTWS_TOOLS_TLS $(SSL_CFLAGS)
TOOL_TLS_DEPS := $(BUILD)/liblightws-tls.a lib/include/lightws_tls.h
TOOL_TLS_LIBS = $(BUILD)/liblightws-tls.a
TOOL_SSL_LIBS = $(SSL_LIBS)
# the interop and browser suites' wss cases use the test certificates
test-interop test-browser: $(BUILD)/tls/certs/.done
endif

tools: $(BUILD)/lightws-echo $(BUILD)/lightws-cat $(BUILD)/demo_client

$(BUILD)/lightws-echo: tools/lightws-echo.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a $(TOOL_TLS_DEPS)
	$(CC) $(TOOL_CFLAGS) $(TOOL_TLS_CFLAGS) tools/lightws-echo.c tools/common.c $(TOOL_TLS_LIBS) $(BUILD)/liblightws.a $(TOOL_SSL_LIBS) $(ZLIB_LIBS) -o $@

$(BUILD)/lightws-cat: tools/lightws-cat.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a $(TOOL_TLS_DEPS)
	$(CC) $(TOOL_CFLAGS) $(TOOL_TLS_CFLAGS) tools/lightws-cat.c tools/common.c $(TOOL_TLS_LIBS) $(BUILD)/liblightws.a $(TOOL_SSL_LIBS) $(ZLIB_LIBS) -o $@

$(BUILD)/demo_client: examples/demo_client.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a
	$(CC) $(TOOL_CFLAGS) examples/demo_client.c tools/common.c $(BUILD)/liblightws.a $(ZLIB_LIBS) -o $@

# The bindings' demos run when their fragments exist.
demo: all $(if $(wildcard mk/lua.mk),lua) $(if $(wildcard mk/python.mk),python)
	bash scripts/demo.sh

ifneq ($(TLS),0)
# The RFC 6455 case matrix over wss against lightws-echo in both roles
# (--tls-cert server, --client wss:// --cafile), each connection relayed
# through Python's ssl (tests/conformance/run.py --tls).
.PHONY: test-conformance-wss
test-conformance-wss: $(BUILD)/lightws-echo $(BUILD)/tls/certs/.done
	/usr/bin/python3 tests/conformance/run.py --tls $(BUILD)/tls/certs --logdir $(BUILD)/conformance-wss \
	  --peer 'lightws-echo-wss=$(BUILD)/lightws-echo'
TEST_TARGETS += test-conformance-wss
endif

ifneq ($(TLS),0)
# lightws-echo with TLS under ASan+UBSan (library, TLS layer and tool built
# together), driven by the wss case matrix in both roles.
$(BUILD)/asan/lightws-echo-tls: tools/lightws-echo.c $(TOOL_COMMON) $(LIB_SRCS) $(LIB_HDRS) lib/tls/tls_openssl.c lib/include/lightws_tls.h
	@mkdir -p $(@D)
	$(CC) $(SAN_TOOL_CFLAGS) -DLIGHTWS_TOOLS_TLS $(SSL_CFLAGS) tools/lightws-echo.c tools/common.c $(LIB_SRCS) \
	  $(wildcard lib/tls/*.c) $(SSL_LIBS) $(ZLIB_LIBS) -o $@

.PHONY: test-tools-wss-asan
test-tools-wss-asan: $(BUILD)/asan/lightws-echo-tls $(BUILD)/tls/certs/.done
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  /usr/bin/python3 tests/conformance/run.py --tls $(BUILD)/tls/certs --logdir $(BUILD)/conformance-wss-asan \
	  --peer 'lightws-echo-wss-asan=$(BUILD)/asan/lightws-echo-tls'
TEST_TARGETS += test-tools-wss-asan
endif

ifneq ($(TLS),0)
# The same under valgrind (not in TEST_TARGETS: about 9 minutes, OpenSSL
# under valgrind; category 8 left out as in test-tools-valgrind).
.PHONY: test-tools-wss-valgrind
test-tools-wss-valgrind: $(BUILD)/lightws-echo $(BUILD)/tls/certs/.done
	/usr/bin/python3 tests/conformance/run.py --tls $(BUILD)/tls/certs --logdir $(BUILD)/conformance-wss-valgrind \
	  -k '[!8]*.*' --peer 'lightws-echo-wss-valgrind=valgrind -q --error-exitcode=99 --exit-on-first-error=yes --leak-check=full $(BUILD)/lightws-echo'
endif
