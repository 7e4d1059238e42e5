# Many-connection benchmark (issue 18, bench/many/): build/loadgen (C, epoll)
# against lightws-echo, libwebsockets, wslay, node ws, python3-websockets and
# the lightws Python and Lua servers; bench/many/run.py prints the table.
#   make bench-many [BENCH_MANY_ARGS="--rounds 3 --duration 3 --record bench/RESULTS.md"]
# Not part of `make test`, except test-bench-many: a ~2 s smoke run of the
# generator against build/lightws-echo (every echoed byte checked).

BENCH_MANY_ARGS ?=
BENCH_MANY_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ilib/include $(CFLAGS)
LWS_LIBS := $(shell pkg-config --libs libwebsockets 2>/dev/null)

.PHONY: bench-many bench-many-build test-bench-many

$(BUILD)/loadgen: bench/many/loadgen.c lib/include/lightws.h $(BUILD)/liblightws.a
	@mkdir -p $(@D)
	$(CC) $(BENCH_MANY_CFLAGS) bench/many/loadgen.c $(BUILD)/liblightws.a -o $@

$(BUILD)/wslay-echo-many: bench/many/wslay_echo.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_MANY_CFLAGS) $< -lwslay -lcrypto -o $@

$(BUILD)/lws-echo-many: bench/many/lws_echo.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_MANY_CFLAGS) $$(pkg-config --cflags libwebsockets) $< $(LWS_LIBS) -o $@

# Peers that fail to build show up as errors in the table instead of stopping the run.
bench-many-build: $(BUILD)/loadgen $(BUILD)/lightws-echo
	-$(MAKE) --no-print-directory $(BUILD)/wslay-echo-many
	-$(if $(LWS_LIBS),$(MAKE) --no-print-directory $(BUILD)/lws-echo-many,@echo "bench-many: no libwebsockets-dev (scripts/deps.sh installs it)")
	-$(MAKE) --no-print-directory $(BUILD)/pyws/speedups.so
	-$(if $(wildcard mk/python.mk),$(MAKE) --no-print-directory python)
	-$(if $(wildcard mk/lua.mk),$(MAKE) --no-print-directory lua)

bench-many: bench-many-build
	/usr/bin/python3 bench/many/run.py $(BENCH_MANY_ARGS)

test-bench-many: $(BUILD)/loadgen $(BUILD)/lightws-echo
	bash bench/many/smoke.sh

TEST_TARGETS += test-bench-many
