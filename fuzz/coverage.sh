#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Line/branch coverage of lib/ reached by a fuzz corpus: builds the target's
# replay driver with clang source-based coverage, replays the corpus
# directories (default: build/fuzz/work-TARGET fuzz/corpus/TARGET
# fuzz/regressions/TARGET) and prints llvm-cov's per-file report for lib/.
#   fuzz/coverage.sh TARGET [DIR...]
set -eu
cd "$(dirname "$0")/.."
t=$1; shift
dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
    for d in build/fuzz/work-$t fuzz/corpus/$t fuzz/regressions/$t; do
        [ -d "$d" ] && dirs+=("$d")
    done
fi
out=build/fuzz-cov
mkdir -p $out
clang -std=c99 -D_POSIX_C_SOURCE=200809L -Ilib/include -Ilib -Ifuzz -O1 -g \
    -fprofile-instr-generate -fcoverage-mapping \
    fuzz/fuzz_$t.c fuzz/replay_main.c lib/*.c -o $out/fuzz_$t
LLVM_PROFILE_FILE=$out/$t.profraw $out/fuzz_$t "${dirs[@]}" >/dev/null
llvm-profdata-14 merge -sparse $out/$t.profraw -o $out/$t.profdata
llvm-cov-14 report $out/fuzz_$t -instr-profile=$out/$t.profdata lib/*.c
