/* `rlfr nodes` and `rlfr help NODE`: the node registry as documentation. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "node.h"

int rlfr_cmd_nodes(int argc, char **argv) {
    if (argc > 1) return rlfr_usage_error("nodes: unexpected argument '%s'", argv[1]);
    int count = 0;
    const rl_node_type *const *types = rl_node_types(&count);
    int width = 4;
    for (int i = 0; i < count; i++) {
        int len = (int)strlen(types[i]->name);
        if (len > width) width = len;
    }
    for (int i = 0; i < count; i++)
        printf("%-*s  %s\n", width, types[i]->name, types[i]->doc ? types[i]->doc : "");
    if (count == 0) printf("(no node types registered)\n");
    return 0;
}

static void print_rank(char *buf, size_t cap, int rank) {
    if (rank < 0)
        snprintf(buf, cap, "any rank");
    else
        snprintf(buf, cap, "rank %d", rank);
}

static void print_ports(const char *title, const rl_port_spec *p, int n) {
    printf("%s:%s\n", title, n ? "" : " none");
    for (int i = 0; i < n; i++) {
        char rank[32];
        print_rank(rank, sizeof rank, p[i].rank);
        char flags[64] = "";
        if (p[i].flags & RL_PORT_OPTIONAL) strcat(flags, " optional");
        if (p[i].flags & RL_PORT_NO_GRAD) strcat(flags, " no-grad");
        printf("  %-12s %-4s %-8s%s  %s\n", p[i].name, (p[i].flags & RL_PORT_ANY_DTYPE) ? "any" : rl_dtype_name(p[i].dtype),
               rank, flags, p[i].doc ? p[i].doc : "");
    }
}

int rlfr_cmd_help(int argc, char **argv) {
    if (argc < 2) return rlfr_usage_error("help: name a node type (rlfr nodes lists them) or a command");
    if (argc > 2) return rlfr_usage_error("help: unexpected argument '%s'", argv[2]);
    const char *name = argv[1];
    const rl_node_type *t = rl_node_type_find(name);
    if (!t) {
        int count = 0, best = -1, best_d = 1 << 30;
        const rl_node_type *const *types = rl_node_types(&count);
        for (int i = 0; i < count; i++) {
            int d = rl_edit_distance(name, types[i]->name);
            if (d < best_d) best_d = d, best = i;
        }
        if (best >= 0 && best_d <= 3)
            fprintf(stderr, "error: unknown node type '%s' (did you mean '%s'?)\n", name, types[best]->name);
        else
            fprintf(stderr, "error: unknown node type '%s' (rlfr nodes lists them)\n", name);
        return 1;
    }
    printf("%s: %s\n", t->name, t->doc ? t->doc : "");
    if (t->flags & RL_NODE_OPTIMIZER) printf("(an optimizer: updates its params set after backward)\n");
    else if (!t->backward) printf("(no backward: gradients stop here)\n");
    print_ports("inputs", t->inputs, t->n_inputs);
    print_ports("outputs", t->outputs, t->n_outputs);
    printf("options:%s\n", t->n_options ? "" : " none");
    for (int i = 0; i < t->n_options; i++) {
        const rl_option_spec *o = &t->options[i];
        char kind[64], def[128];
        if (o->kind == RL_VAL_OBJECT && o->object_type)
            snprintf(kind, sizeof kind, "object(%s)", o->object_type);
        else
            snprintf(kind, sizeof kind, "%s", rl_value_kind_name(o->kind));
        if (!o->def)
            snprintf(def, sizeof def, "required");
        else
            snprintf(def, sizeof def, "= %s", o->def[0] ? o->def : "\"\"");
        printf("  %-14s %-16s %-16s %s\n", o->name, kind, def, o->doc ? o->doc : "");
    }
    return 0;
}
