/* SPDX-License-Identifier: MIT */
/* The one Lua 5.1 (LuaJIT, OpenResty) compatibility block of lightws.core; the module is written for 5.4. */
#ifndef LIGHTWS_LUA_COMPAT_H
#define LIGHTWS_LUA_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if LUA_VERSION_NUM < 502
/* LuaJIT declares luaL_setfuncs but plain 5.1 does not, so the shim
 * carries its own name. */
#define lua_rawlen(L, i) lua_objlen(L, (i))

static void compat_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);  /* table func */
    lua_setfield(L, -2, l->name);   /* table */
  }
}

#else
#define compat_setfuncs(L, l) luaL_setfuncs(L, l, 0)
#endif

#endif
