# Interop tests: lightws-echo / lightws-cat against real peers (python3-websockets, node ws), both roles, with and without permessage-deflate (tests/interop/deflate.py, node_deflate.js).

TEST_TARGETS += test-interop
.PHONY: test-interop

test-interop: tools
	bash tests/interop/run.sh
