# RFC 6455 conformance suite (tests/conformance): the case matrix in both
# roles against build/lightws-echo, the Python and Lua echo peers when their
# scripts exist, and python3-websockets 10.4 as the known-good reference
# that validates the suite itself. Fault cases run in the same matrix.

CONF_PY := /usr/bin/python3
CONF_RUN := $(CONF_PY) tests/conformance/run.py
CONF_PY_ECHO := $(wildcard bindings/python/lightws/echo.py)
CONF_LUA_ECHO := $(wildcard examples/echo.lua)
CONF_PEER_DEPS := $(BUILD)/lightws-echo $(if $(CONF_PY_ECHO),python) $(if $(CONF_LUA_ECHO),$(BUILD)/lua54/lightws/core.so)
CONF_PEERS := --peer 'lightws-echo=$(BUILD)/lightws-echo' \
  $(if $(CONF_PY_ECHO),--peer 'python=env PYTHONPATH=$(CURDIR)/bindings/python $(CONF_PY) -m lightws.echo') \
  $(if $(CONF_LUA_ECHO),--peer 'lua=env LUA_CPATH=$(CURDIR)/$(BUILD)/lua54/?.so;; LUA_PATH=$(CURDIR)/bindings/lua/?.lua;$(CURDIR)/bindings/lua/?/init.lua;; lua5.4 $(CURDIR)/examples/echo.lua') \
  --peer 'websockets-ref=$(CONF_PY) tests/conformance/ref_websockets_echo.py'

.PHONY: test-conformance test-conformance-ref

test-conformance: $(CONF_PEER_DEPS)
	$(CONF_RUN) --logdir $(BUILD)/conformance $(CONF_PEERS)

# Only the reference peer (checks the suite, not lightws).
test-conformance-ref:
	$(CONF_RUN) --logdir $(BUILD)/conformance --peer 'websockets-ref=$(CONF_PY) tests/conformance/ref_websockets_echo.py'

TEST_TARGETS += test-conformance

# Real browser (tests/browser): headless Chromium against lightws-echo, and
# a server-initiated ping from a lightws (Python binding) server.
.PHONY: test-browser
test-browser: $(BUILD)/lightws-echo $(if $(wildcard mk/python.mk),python)
	$(CONF_PY) tests/browser/run.py --echo $(BUILD)/lightws-echo

TEST_TARGETS += test-browser

# Load: 10,000 concurrent connections to lightws-echo (not in `make test`).
SOAK_CONNECTIONS ?= 10000
.PHONY: soak
soak: $(BUILD)/lightws-echo
	$(CONF_PY) bench/soak.py --connections $(SOAK_CONNECTIONS) --echo $(BUILD)/lightws-echo
