# Side-by-side benchmarks (bench/): raw TCP, lightws C, wslay, python3-websockets,
# node ws, the lightws Python and Lua bindings. `make bench` builds what it can and
# runs bench/run.py, which prints one table. Not part of `make test`.
#   make bench BENCH_ROUNDS=5 BENCH_SCALE=1.0 [BENCH_ONLY=raw,lightws-c] [BENCH_WORKLOADS=W1,W3]
#              [BENCH_RECORD=bench/RESULTS.md]  (appends the table with the date)
# W5 (permessage-deflate, issue 11) runs only when named: it is long (512 MiB of
# compression per implementation per round at scale 1):
#   make bench BENCH_WORKLOADS=W5 BENCH_ROUNDS=3 BENCH_SCALE=0.25   (or W5a / W5b)
# It also uses build/lightws-echo (mk/tools.mk) for the idle-connection memory.

BENCH_ROUNDS ?= 5
BENCH_SCALE ?= 1.0
BENCH_ONLY ?=
BENCH_WORKLOADS ?=
BENCH_RECORD ?=
BENCH_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ilib/include -Ibench $(CFLAGS)
BENCH_COMMON := bench/bench_common.c bench/bench_common.h
BENCH_PYTHON := /usr/bin/python3

BENCH_BINS := $(BUILD)/raw-bench $(BUILD)/wslay-bench $(BUILD)/lightws-bench \
  $(BUILD)/alloc-count.so $(BUILD)/pyws/speedups.so

.PHONY: bench bench-build

$(BUILD)/raw-bench: bench/raw_bench.c $(BENCH_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) bench/raw_bench.c bench/bench_common.c -o $@

$(BUILD)/wslay-bench: bench/wslay_bench.c $(BENCH_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) bench/wslay_bench.c bench/bench_common.c -lwslay -o $@

$(BUILD)/lightws-bench: bench/lightws_bench.c $(BENCH_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) bench/lightws_bench.c bench/bench_common.c $(BUILD)/liblightws.a $(ZLIB_LIBS) -o $@

# Heap-allocation counter, preloaded into the C programs by the harness.
$(BUILD)/alloc-count.so: bench/alloc_count.c
	@mkdir -p $(@D)
	$(CC) -O2 -fPIC -shared $(WARN) -Wno-missing-prototypes bench/alloc_count.c -o $@

# Debian ships websockets' C speedups as source only; build them for the benchmark.
$(BUILD)/pyws/speedups.so: /usr/lib/python3/dist-packages/websockets/speedups.c
	@mkdir -p $(@D)
	$(CC) -O2 -fPIC -shared $$($(BENCH_PYTHON) -c "import sysconfig;print('-I'+sysconfig.get_paths()['include'])") $< -o $@

# The bindings are built when their fragments exist; a binding that fails to
# build shows up as missing in the table instead of stopping the run.
bench-build: $(BENCH_BINS) $(if $(wildcard mk/tools.mk),$(BUILD)/lightws-echo)
	-$(if $(wildcard mk/python.mk),$(MAKE) python)
	-$(if $(wildcard mk/lua.mk),$(MAKE) lua)

bench: bench-build
	$(BENCH_PYTHON) bench/run.py --rounds $(BENCH_ROUNDS) --scale $(BENCH_SCALE) \
	  $(if $(BENCH_ONLY),--only $(BENCH_ONLY)) $(if $(BENCH_WORKLOADS),--workloads $(BENCH_WORKLOADS)) \
	  $(if $(BENCH_RECORD),--record $(BENCH_RECORD))
