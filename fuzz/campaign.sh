#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Long fuzz runs: fuzz/campaign.sh RUNS TARGET... runs each libFuzzer target
# (built by `make fuzz-build`) for RUNS executions, one process each, in turn,
# logging to build/fuzz/log-TARGET.txt; prints executions, coverage and
# crashes per target. Crash inputs land in build/fuzz/crash-TARGET-*.
set -u
cd "$(dirname "$0")/.."
runs=$1; shift
for t in "$@"; do
    mkdir -p build/fuzz/work-$t fuzz/corpus/$t
    log=build/fuzz/log-$t.txt
    start=$(date +%s)
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/ubsan.supp \
    build/fuzz/fuzz_$t -runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=1024 \
        -artifact_prefix=build/fuzz/crash-$t- build/fuzz/work-$t fuzz/corpus/$t >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' | awk '{print $2}')
    ft=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'ft: [0-9]*' | awk '{print $2}')
    crashes=$(ls build/fuzz/crash-$t-* 2>/dev/null | wc -l)
    echo "$t: rc=$rc execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=$(ls build/fuzz/work-$t | wc -l) crashes=$crashes seconds=$((end-start))"
done
