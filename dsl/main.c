/* The rlfr command line: a table of subcommands. Adding one is one line in
 * `commands` below (plus its declaration in dsl/commands.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const rlfr_command commands[] = {
    {"run", rlfr_cmd_run, "run SCRIPT.lua [--set key=value ...] [--seed N] [--threads N] [--out DIR] [--verbose]",
     "build and train the graph a Lua script describes"},
    {"plan", rlfr_cmd_plan, "plan SCRIPT.lua [--set key=value ...]",
     "print the buffer plan of the script's graph without training"},
    {"nodes", rlfr_cmd_nodes, "nodes", "list the registered node types"},
    {"help", rlfr_cmd_help, "help [NODE|COMMAND]", "ports and options of a node type, or a command's usage"},
    {"tokenize", rlfr_cmd_tokenize, "tokenize TOKENIZER.json [--decode] [--chat] [--files F...] < text | tokenize --train OUT.json --vocab-size N FILE...",
     "encode text to token ids (or decode, or train a BPE tokenizer)"},
    {"verify", rlfr_cmd_verify, "verify GOLD [GOLD...] [--partial X] [--truncated] [--format vision] < response",
     "reward and reason of a response (stdin) against a gold answer"},
    {"shapes", rlfr_cmd_shapes, "shapes --out DIR [--n N] [--split train|test] [--start I] [--seed S]", "write samples of the shapes task as PNG + JSONL"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f, "rlfr %s: reinforcement learning of language models with flow rewards\n\n", RLFR_VERSION);
    fprintf(f, "usage: rlfr COMMAND [ARGS]\n       rlfr --help | --version\n\ncommands:\n");
    for (int i = 0; commands[i].name; i++) fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].doc);
    fprintf(f, "\n");
    for (int i = 0; commands[i].name; i++) fprintf(f, "  rlfr %s\n", commands[i].usage);
    fprintf(f, "\n--set key=value overrides an option the script declares with rlfr.config\n"
               "(nested keys with dots: --set flow.coef=0; lists as 1,2 or {1,2}).\n"
               "'rlfr nodes' lists node types; 'rlfr help NODE' shows one. Docs: docs/dsl.md\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("rlfr %s\n", RLFR_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 && argc == 2) {
        usage(stdout);
        return 0;
    }
    /* `rlfr help COMMAND` is answered here, where the table is. */
    if (strcmp(cmd, "help") == 0 && argc >= 3)
        for (int i = 0; commands[i].name; i++)
            if (strcmp(commands[i].name, argv[2]) == 0) {
                printf("usage: rlfr %s\n  %s\n", commands[i].usage, commands[i].doc);
                return 0;
            }
    for (int i = 0; commands[i].name; i++)
        if (strcmp(commands[i].name, cmd) == 0) return commands[i].fn(argc - 1, argv + 1);
    if (cmd[0] == '-') return rlfr_usage_error("unknown flag '%s'", cmd);
    return rlfr_usage_error("unknown command '%s'", cmd);
}
