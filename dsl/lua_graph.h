/* Graph primitives for the "rlfr.core" Lua module. */
#ifndef RLFR_LUA_GRAPH_H
#define RLFR_LUA_GRAPH_H

#include <lua.h>

/* Adds graph_new, add, connect, mark_output, compile, run, metrics, read, plan,
 * print_plan, node_info, find to the table on top of the stack. */
void rlfr_graph_register(lua_State *L);

/* The rl_graph behind a graph value (core.graph_new); raises if idx is not one
 * or the graph was freed. For other binding modules (dsl/lua_ckpt.c). */
struct rl_graph;
struct rl_graph *rlfr_check_graph(lua_State *L, int idx);

#endif
