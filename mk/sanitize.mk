# The tools under ASan+UBSan and under valgrind, driven by the RFC 6455 case
# suite in both roles (tests/conformance): a sanitizer report kills the
# peer (abort / --exit-on-first-error), so the case that caused it fails.

SAN_TOOL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ilib/include -Ilib -Itools $(ZLIB_CFLAGS) -O1 -g $(SAN)

$(BUILD)/asan/lightws-echo: tools/lightws-echo.c $(TOOL_COMMON) $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SAN_TOOL_CFLAGS) tools/lightws-echo.c tools/common.c $(LIB_SRCS) $(ZLIB_LIBS) -o $@

.PHONY: test-tools-asan test-tools-valgrind
test-tools-asan: $(BUILD)/asan/lightws-echo
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(CONF_RUN) --logdir $(BUILD)/conformance-asan --peer 'lightws-echo-asan=$(BUILD)/asan/lightws-echo'

# Under valgrind the limits category (16 MiB, 10,000 pipelined messages) is
# too slow for the suite's timeouts; every other category runs, in the
# server role (one valgrind process for all cases). The client role starts
# a process per case (about 2 s each under valgrind, 7+ minutes in all):
# it runs under ASan above; `make test-tools-valgrind VG_ROLE=both` adds it.
VG_ROLE ?= server
test-tools-valgrind: $(BUILD)/lightws-echo
	$(CONF_RUN) --logdir $(BUILD)/conformance-valgrind -k '[!8]*.*' --role $(VG_ROLE) \
	  --peer 'lightws-echo-valgrind=valgrind -q --error-exitcode=99 --exit-on-first-error=yes --leak-check=full $(BUILD)/lightws-echo'

TEST_TARGETS += test-tools-asan test-tools-valgrind
