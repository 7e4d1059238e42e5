# Python binding: the cffi extension lightws._lightws (lib/*.c compiled in,
# API mode) plus the package in bindings/python/lightws. `python` builds it
# in place for PYTHONPATH=bindings/python; `test-python` installs it into
# build/venv (Debian's python3 with its cffi, pytest and websockets) with
# pip, the way users install it, and runs tests/python there.

PY_SYS := /usr/bin/python3
PY_VENV := $(BUILD)/venv
PY_PKG := bindings/python/lightws
PY_DEPS := setup.py pyproject.toml $(PY_PKG)/_cdef.h $(PY_PKG)/_build.py $(LIB_SRCS) $(LIB_HDRS)

.PHONY: python test-python

python:
	@ls $(PY_PKG)/_lightws*.so >/dev/null 2>&1 || rm -f $(BUILD)/python/inplace.stamp
	@$(MAKE) --no-print-directory $(BUILD)/python/inplace.stamp

$(BUILD)/python/inplace.stamp: $(PY_DEPS)
	@mkdir -p $(@D)
	$(PY_SYS) setup.py -q build_ext --inplace --build-temp $(BUILD)/python/temp
	@touch $@

$(PY_VENV)/.ready:
	rm -rf $(PY_VENV)
	$(PY_SYS) -m venv --system-site-packages $(PY_VENV)
	$(PY_VENV)/bin/python -c 'import wheel' 2>/dev/null || \
	  $(PY_VENV)/bin/python -m pip install -q --no-index /usr/share/python-wheels/wheel-*.whl
	@touch $@

test-python: $(PY_VENV)/.ready $(BUILD)/lightws-echo
	$(PY_VENV)/bin/python -m pip install -q --no-index --no-deps --no-build-isolation --force-reinstall .
	cd tests/python && PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" LIGHTWS_ROOT="$(CURDIR)" \
	  NODE_PATH="$(CURDIR)/$(BUILD)/node/node_modules" \
	  $(CURDIR)/$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider .

TEST_TARGETS += test-python
