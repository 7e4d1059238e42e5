# Fuzzing (fuzz/): libFuzzer targets built with clang, and a replay build
# (gcc + ASan/UBSan, no libFuzzer) that runs the committed corpora and the
# regression inputs in CI. `make fuzz` fuzzes each target FUZZ_SECONDS.

FUZZ_NAMES := frame_decode utf8 handshake_request handshake_response stream inflate
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Ilib/include -Ilib -Ifuzz $(ZLIB_CFLAGS) -g -O1 \
  -fno-omit-frame-pointer
FUZZ_DEPS := $(LIB_SRCS) $(LIB_HDRS) fuzz/fuzz_common.h
FUZZ_BINS := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_REPLAY_BINS := $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-replay test-fuzz-replay

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  $< $(LIB_SRCS) $(ZLIB_LIBS) -o $@

$(BUILD)/fuzz-replay/fuzz_%: fuzz/fuzz_%.c fuzz/replay_main.c $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(SAN) $< fuzz/replay_main.c $(LIB_SRCS) $(ZLIB_LIBS) -o $@

fuzz-build: $(FUZZ_BINS)

# UBSan findings abort (halt_on_error) unless listed in fuzz/ubsan.supp
# (reported findings, so that a long run goes on past them).
FUZZ_ENV := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(CURDIR)/fuzz/ubsan.supp

# New inputs go to build/fuzz/work-<target>; fuzz/corpus/<target> (the
# committed seeds) is read only. Crashes land in build/fuzz/.
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_NAMES); do \
	  mkdir -p $(BUILD)/fuzz/work-$$t fuzz/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_ENV) $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crash-$$t- $(BUILD)/fuzz/work-$$t fuzz/corpus/$$t 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|stat::peak_rss|#[0-9]+ *DONE|==[0-9]+==|SUMMARY)' || true; \
	  test -z "$$(ls $(BUILD)/fuzz/crash-$$t-* 2>/dev/null)" || { echo "fuzz: $$t crashed"; exit 1; }; \
	done

test-fuzz-replay: $(FUZZ_REPLAY_BINS)
	@set -e; for t in $(FUZZ_NAMES); do \
	  mkdir -p fuzz/corpus/$$t; \
	  dirs="fuzz/corpus/$$t"; test ! -d fuzz/regressions/$$t || dirs="$$dirs fuzz/regressions/$$t"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(BUILD)/fuzz-replay/fuzz_$$t $$dirs; \
	done

fuzz-replay: test-fuzz-replay

TEST_TARGETS += test-fuzz-replay
