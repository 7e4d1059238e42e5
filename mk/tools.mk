# Command-line tools (lightws-echo, lightws-cat), the C demo client and `make demo`.

TOOL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ilib/include -Itools $(CFLAGS)
TOOL_COMMON := tools/common.c tools/common.h

tools: $(BUILD)/lightws-echo $(BUILD)/lightws-cat $(BUILD)/demo_client

$(BUILD)/lightws-echo: tools/lightws-echo.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a
	$(CC) $(TOOL_CFLAGS) tools/lightws-echo.c tools/common.c $(BUILD)/liblightws.a $(ZLIB_LIBS) -o $@

$(BUILD)/lightws-cat: tools/lightws-cat.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a
	$(CC) $(TOOL_CFLAGS) tools/lightws-cat.c tools/common.c $(BUILD)/liblightws.a $(ZLIB_LIBS) -o $@

$(BUILD)/demo_client: examples/demo_client.c $(TOOL_COMMON) lib/include/lightws.h $(BUILD)/liblightws.a
	$(CC) $(TOOL_CFLAGS) examples/demo_client.c tools/common.c $(BUILD)/liblightws.a $(ZLIB_LIBS) -o $@

# The bindings' demos run when their fragments exist.
demo: all $(if $(wildcard mk/lua.mk),lua) $(if $(wildcard mk/python.mk),python)
	bash scripts/demo.sh
