/* The `rlfr` command line: one table of subcommands (dsl/main.c) and one table
 * of Lua binding modules (dsl/modules.c). Adding a subcommand or a binding
 * module is one declaration here plus one line in that table. */
#ifndef RLFR_COMMANDS_H
#define RLFR_COMMANDS_H

/* A subcommand gets argv with argv[0] = the subcommand name and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
typedef int (*rlfr_cmd_fn)(int argc, char **argv);

typedef struct rlfr_command {
    const char *name;
    rlfr_cmd_fn fn;
    const char *usage;   /* "run SCRIPT.lua [--set k=v ...]": shown by --help */
    const char *doc;     /* one line */
} rlfr_command;

int rlfr_cmd_run(int argc, char **argv);     /* dsl/cmd_run.c */
int rlfr_cmd_plan(int argc, char **argv);    /* dsl/cmd_run.c */
int rlfr_cmd_nodes(int argc, char **argv);   /* dsl/cmd_nodes.c */
int rlfr_cmd_help(int argc, char **argv);    /* dsl/cmd_nodes.c */
/* Added by their owners: */
int rlfr_cmd_tokenize(int argc, char **argv); /* dsl/cmd_tokenize.c */
int rlfr_cmd_verify(int argc, char **argv);   /* dsl/cmd_verify.c */
int rlfr_cmd_shapes(int argc, char **argv);   /* dsl/cmd_shapes.c */

/* Prints a one-line usage error ("error: MSG (try 'rlfr --help')") and returns 2. */
int rlfr_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lua binding modules. Each open function follows the luaopen_ convention:
 * it pushes one table. The table is available as require "rlfr.NAME", and its
 * fields are copied into the `rlfr` module (so rlfr.load, rlfr.tokenizer ...).
 * The function type is declared without lua.h so the C core can see this file. */
struct lua_State;
typedef int (*rlfr_module_open)(struct lua_State *L);
typedef struct rlfr_module {
    const char *name;
    rlfr_module_open open;
} rlfr_module;

/* NULL-terminated; defined in dsl/modules.c. */
extern const rlfr_module rlfr_modules[];

/* Modules defined by dsl/: */
int rlfr_open_core(struct lua_State *L);      /* dsl/lua_core.c: graph, params, registry */
/* Added by their owners, e.g.: int rlfr_open_tokenizer(struct lua_State *L); */
int rlfr_open_tokenizer(struct lua_State *L);   /* dsl/lua_tokenizer.c */
int rlfr_open_models(struct lua_State *L);      /* dsl/lua_models.c: bundles, new_policy, new_flow */
int rlfr_open_ckpt(struct lua_State *L);        /* dsl/lua_ckpt.c: checkpoints for rlfr.train */
int rlfr_open_vision(struct lua_State *L);      /* dsl/lua_vision.c: rlfr.new_vit / save_vit / load_vit */

#endif
