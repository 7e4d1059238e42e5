# Lua binding: lightws.core for Lua 5.4 and for LuaJIT (OpenResty, the 5.1
# ABI), one .so per ABI, plus its test suite (busted under both, nginx with
# the Lua module, luarocks installs from the rockspec).

LUA54_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUA_BIND_SRCS := bindings/lua/lightws_core.c
LUA_BIND_HDRS := bindings/lua/compat.h bindings/lua/lightws_xport.h $(LIB_HDRS)
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

# wss: lightws.tls_core (bindings/lua/lightws_tls.c) over liblightws-tls and
# OpenSSL, one .so per ABI next to core.so; not built with TLS=0 (mk/tls.mk),
# and then `require "lightws"` still works and wss:// says the module is
# missing. (mk/tls.mk is read after this file: its variables are not set yet.)
ifneq ($(TLS),0)
LUA_TLS_SRCS := bindings/lua/lightws_tls.c
LUA_TLS_PIC_OBJS := $(patsubst lib/tls/%.c,$(BUILD)/pic/tls/%.o,$(wildcard lib/tls/*.c))
LUA_SSL_CFLAGS := $(shell pkg-config --cflags openssl 2>/dev/null)
LUA_SSL_LIBS := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
LUA_TLS_DEPS := $(LUA_TLS_SRCS) $(LUA_BIND_HDRS) lib/include/lightws_tls.h $(LUA_TLS_PIC_OBJS) $(LIB_PIC_OBJS)
LUA_TLS_LINK = $(LUA_TLS_SRCS) $(LUA_TLS_PIC_OBJS) $(LIB_PIC_OBJS) $(LUA_SSL_LIBS) $(ZLIB_LIBS) -ldl

lua: $(BUILD)/lua54/lightws/tls_core.so $(BUILD)/luajit/lightws/tls_core.so

$(BUILD)/lua54/lightws/tls_core.so: $(LUA_TLS_DEPS)
	@mkdir -p $(@D)
	$(CC) $(LUA_MOD_CFLAGS) $(LUA_SSL_CFLAGS) $(LUA54_CFLAGS) $(LUA_TLS_LINK) -o $@
	@chmod a+r $@

$(BUILD)/luajit/lightws/tls_core.so: $(LUA_TLS_DEPS)
	@mkdir -p $(@D)
	$(CC) $(LUA_MOD_CFLAGS) $(LUA_SSL_CFLAGS) $(LUAJIT_CFLAGS) $(LUA_TLS_LINK) -o $@
	@chmod a+r $@
else
# TLS=0: a tls_core.so left from an earlier build would still be found
lua: lua-no-tls
.PHONY: lua-no-tls
lua-no-tls:
	rm -f $(BUILD)/lua54/lightws/tls_core.so $(BUILD)/luajit/lightws/tls_core.so
endif

test-lua: lua $(BUILD)/lightws-echo
	LIGHTWS_LUA_TLS=$(if $(filter 0,$(TLS)),0,1) bash tests/lua/run.sh

TEST_TARGETS += test-lua
