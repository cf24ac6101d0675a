/* The tokenizer from Lua: rlfr.train_tokenizer and rlfr.tokenizer, the
 * methods of the object (encode, decode, chat, vocab_size, token_id,
 * special_ids, pad_id), errors raised as Lua errors, and the object passing as
 * the `tokenizer` option of a node (an OBJECT value of type "tokenizer"). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_opts.h"
#include "luax.h"
#include "script.h"
#include "testlib.h"

static const char SCRIPT[] =
    "local rlfr = require 'rlfr'\n"
    "local out = ...\n"
    "local texts = {}\n"
    "for i = 1, 20 do texts[i] = 'the cat sat on the mat, the dog sat on the log ' .. i end\n"
    "local tok = rlfr.train_tokenizer{ texts = texts, vocab_size = 270, min_frequency = 2,\n"
    "  special = {'<|endoftext|>', '<|im_start|>', '<|im_end|>'}, out = out }\n"
    "assert(tok.type == 'tokenizer')\n"
    "assert(tok:vocab_size() == 270, 'vocab ' .. tok:vocab_size())\n"
    "assert(tok:token_id('<|im_end|>') == 2 and tok:token_id('nope') == nil)\n"
    "local sp = tok:special_ids(); assert(#sp == 3 and sp[1] == 0 and sp[3] == 2)\n"
    "assert(tok:pad_id() == 0)\n"
    "local ids = tok:encode('the cat sat on the log')\n"
    "assert(#ids > 0 and #ids < 22, 'ids ' .. #ids)\n"
    "assert(tok:decode(ids) == 'the cat sat on the log')\n"
    "local again = rlfr.tokenizer(out)\n"
    "assert(table.concat(again:encode('the cat'), ',') == table.concat(tok:encode('the cat'), ','))\n"
    "local chat = tok:chat('hi', '')\n"
    "assert(chat[1] == 1, 'chat starts with <|im_start|>')\n"
    "assert(tok:decode(chat) == '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n')\n"
    "assert(tok:decode(chat, true) == 'user\\nhi\\nassistant\\n')\n"
    "local ok, err = pcall(rlfr.tokenizer, '/nonexistent/tok.json')\n"
    "assert(not ok and err:find('cannot open'), err)\n"
    "ok, err = pcall(tok.decode, tok, {5, 1000000})\n"
    "assert(not ok and err:find('1000000'), err)\n"
    "ok, err = pcall(rlfr.train_tokenizer, { texts = {'a'}, vocab_size = 10, out = out })\n"
    "assert(not ok and err:find('256'), err)\n"
    "ok, err = pcall(rlfr.train_tokenizer, { textz = {'a'}, vocab_size = 300, out = out })\n"
    "assert(not ok and err:find('textz'), err)\n"
    "return { tokenizer = tok, template = 'chat' }\n";

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rlfr_script_args a = {.script = "tok.lua", .mode = "run"};
    lua_State *L = rlfr_lua_new(&a);
    CHECK(L != NULL);
    if (!L) return rl_test_finish("test_tokenizer_lua");
    char out[256];
    snprintf(out, sizeof out, "/tmp/rlfr_test_toklua_%d.json", (int)getpid());
    int rc = luaL_loadstring(L, SCRIPT);
    if (rc == LUA_OK) {
        lua_pushstring(L, out);
        rc = lua_pcall(L, 1, 1, 0);
    }
    CHECK_MSG(rc == LUA_OK, "lua: %s", lua_tostring(L, -1));
    if (rc == LUA_OK) {
        rl_opts o;
        rl_error err = {0};
        rl_opts_init(&o);
        CHECK_MSG(rlfr_table_to_opts(L, -1, NULL, &o, &err) == 0, "%s", err.msg);
        const rl_value *v = rl_opts_get(&o, "tokenizer");
        CHECK(v && v->kind == RL_VAL_OBJECT && v->obj && strcmp(v->obj->type, "tokenizer") == 0);
        rl_opts_free(&o);
    }
    lua_close(L);
    remove(out);
    return rl_test_finish("test_tokenizer_lua");
}
