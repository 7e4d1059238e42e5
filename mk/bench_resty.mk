# lightws.resty in nginx under many connections (issue 15, bench/resty/):
# build/loadgen against an nginx worker running lightws.resty's echo loop,
# build/lightws-echo as the reference, then the Lua allocation probe.
#   make bench-resty [BENCH_RESTY_ARGS="--rounds 3 --record bench/RESULTS.md"]
# Needs nginx-light, libnginx-mod-http-lua, luajit2, libluajit2-5.1-dev.
# Not part of `make test`.

BENCH_RESTY_ARGS ?=

.PHONY: bench-resty

bench-resty: $(BUILD)/loadgen $(BUILD)/lightws-echo $(BUILD)/luajit/lightws/core.so
	/usr/bin/python3 bench/resty/run.py $(BENCH_RESTY_ARGS)
