# Lua binding: lightws.core for Lua 5.4 and for LuaJIT (OpenResty, the 5.1
# ABI), one .so per ABI, plus its test suite (busted under both, nginx with
# the Lua module, luarocks installs from the rockspec).

LUA54_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUA_BIND_SRCS := bindings/lua/lightws_core.c
LUA_BIND_HDRS := bindings/lua/compat.h $(LIB_HDRS)
LUA_MOD_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Ilib/include -Ilib $(CFLAGS) -fPIC -shared

.PHONY: lua test-lua test-lua-busted test-lua-nginx test-lua-rocks

lua: $(BUILD)/lua54/lightws/core.so $(BUILD)/luajit/lightws/core.so

$(BUILD)/lua54/lightws/core.so: $(LUA_BIND_SRCS) $(LUA_BIND_HDRS) $(LIB_PIC_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LUA_MOD_CFLAGS) $(LUA54_CFLAGS) $(LUA_BIND_SRCS) $(LIB_PIC_OBJS) $(ZLIB_LIBS) -o $@
	@chmod a+r $@

$(BUILD)/luajit/lightws/core.so: $(LUA_BIND_SRCS) $(LUA_BIND_HDRS) $(LIB_PIC_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LUA_MOD_CFLAGS) $(LUAJIT_CFLAGS) $(LUA_BIND_SRCS) $(LIB_PIC_OBJS) $(ZLIB_LIBS) -o $@
	@chmod a+r $@

test-lua: lua $(BUILD)/lightws-echo
	bash tests/lua/run.sh

TEST_TARGETS += test-lua
