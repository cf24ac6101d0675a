/* The vision_encoder node in graphs: with an optimizer on the vit the MSE to
 * a fixed target falls; the parameter gradient through the graph matches
 * finite differences; a smaller batch (fewer, smaller images) runs in the
 * buffers planned for the largest; a steady-state step allocates nothing;
 * without an optimizer the node is frozen (no backward) and gives the same
 * embeddings; bad inputs fail with one clear line (wrong pixel row size,
 * image side not a multiple of patch x merge, grid not matching the rows,
 * wrong object). Also the Lua side: rlfr.new_vit / save_vit / load_vit. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "alloc.h"
#include "checkpoint.h"
#include "graph.h"
#include "luax.h"
#include "script.h"
#include "testlib.h"
#include "vit.h"

#define P 12     /* channels 3 x patch 2 x patch 2 */
#define NMAX 24  /* patches of the largest batch */
#define OUT 8

/* ---- test-local source: pixels, grid and a target for the embeddings ---- */
static int g_case;       /* 0: grids {4,4},{2,4}; 1: {2,2}; 2: bad side; 3: rows mismatch */
static int g_cols = P;   /* row size the source declares */
static float g_pixels[NMAX * P], g_target[NMAX / 4 * OUT];

static const rl_port_spec src_out[] = {
    {"pixels", RL_F32, 2, 0, 0, "patches"}, {"grid", RL_I32, 2, 0, 0, "grid"}, {"target", RL_F32, 2, 0, 0, "target"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(NMAX, g_cols);
    n->out[1].shape = rl_shape2(2, 2);
    n->out[2].shape = rl_shape2(NMAX / 4, OUT);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    static const int32_t grids[4][4] = {{4, 4, 2, 4}, {2, 2, 0, 0}, {3, 4, 2, 6}, {2, 4, 2, 2}};
    const int B = g_case == 1 ? 1 : 2, N = g_case == 1 ? 4 : NMAX, M = g_case == 1 ? 1 : NMAX / 4;
    n->out[0].shape = rl_shape2(N, g_cols);
    n->out[1].shape = rl_shape2(B, 2);
    n->out[2].shape = rl_shape2(M, OUT);
    memcpy(n->out[0].data, g_pixels, (size_t)(N * g_cols) * sizeof(float));
    memcpy(n->out[1].data, grids[g_case], (size_t)B * 2 * sizeof(int32_t));
    memcpy(n->out[2].data, g_target, (size_t)(M * OUT) * sizeof(float));
    return 0;
}
static const rl_node_type t_src = {.name = "t_images", .doc = "test images", .outputs = src_out, .n_outputs = 3,
                                   .infer = src_infer, .forward = src_forward};

/* ---- helpers ---- */

static rl_object *new_vit(uint64_t seed) {
    rl_error e = {0};
    rl_vit_config c = {.patch = 2, .channels = 3, .width = 16, .depth = 1, .heads = 2, .mlp = 32, .out_hidden = OUT,
                       .merge = 2};
    rl_vit *v = rl_vit_new(&c, seed, &e);
    CHECK_MSG(v != NULL, "%s", e.msg);
    return v ? rl_vit_object(v) : NULL;
}

typedef struct built {
    rl_graph *g;
    rl_node *src, *vis, *loss;
} built;

/* opt: NULL (frozen), "adamw" or "sink". */
static int build(built *b, rl_object *vit, const char *opt, rl_error *e) {
    memset(b, 0, sizeof *b);
    b->g = rl_graph_new("vision");
    rl_opts o;
    rl_opts_init(&o);
    b->src = rl_graph_add(b->g, &t_src, NULL, "vit.lua:1", NULL, &o, e);
    rl_opts_set_object(&o, "net", vit);
    b->vis = b->src ? rl_graph_add(b->g, rl_node_type_find("vision_encoder"), NULL, "vit.lua:2", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!b->vis) return -1;
    rl_opts_init(&o);
    b->loss = rl_graph_add(b->g, rl_node_type_find("mse_loss"), NULL, "vit.lua:3", NULL, &o, e);
    if (!b->loss || rl_graph_connect(b->g, b->vis, 0, b->src, 0, e) || rl_graph_connect(b->g, b->vis, 1, b->src, 1, e) ||
        rl_graph_connect(b->g, b->loss, 0, b->vis, 0, e) || rl_graph_connect(b->g, b->loss, 1, b->src, 2, e) ||
        rl_graph_mark_output(b->g, b->loss, 0, e) || rl_graph_mark_output(b->g, b->vis, 0, e) ||
        rl_graph_mark_output(b->g, b->vis, 1, e)) {
        rl_opts_free(&o);
        return -1;
    }
    rl_opts_free(&o);
    if (opt) {
        rl_opts_init(&o);
        rl_opts_set_object(&o, "params", vit);
        if (strcmp(opt, "adamw") == 0) rl_opts_set_number(&o, "lr", 1e-2);
        const rl_node_type *ot = strcmp(opt, "adamw") == 0 ? rl_node_type_find("optimizer") : &rl_test_grad_sink;
        rl_node *on = rl_graph_add(b->g, ot, NULL, "vit.lua:4", NULL, &o, e);
        rl_opts_free(&o);
        if (!on || rl_graph_connect(b->g, on, 0, b->loss, 0, e)) return -1;
    }
    return rl_graph_compile(b->g, NULL, e);
}

static float run_loss(built *b) {
    rl_error e = {0};
    rl_run_ctx ctx = {0};
    int rc = rl_graph_run(b->g, NULL, &ctx, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    return rc ? NAN : rl_f32(&b->loss->out[0])[0];
}

static double loss_f(void *ctx) { return run_loss(ctx); }

/* ---- tests ---- */

static void test_train_and_frozen(void) {
    rl_error e = {0};
    g_case = 0;
    rl_object *vit = new_vit(3);
    built fz, tr;
    /* Frozen: no optimizer, so no backward and nothing saved. */
    CHECK_MSG(build(&fz, vit, NULL, &e) == 0, "%s", e.msg);
    CHECK(fz.vis && !fz.vis->needs_backward);
    float l_frozen = run_loss(&fz);
    static float emb_frozen[NMAX / 4 * OUT];
    memcpy(emb_frozen, fz.vis->out[0].data, sizeof emb_frozen);
    const int32_t *cnt = rl_i32(&fz.vis->out[1]);
    CHECK(fz.vis->out[0].shape.dim[0] == 6 && fz.vis->out[0].shape.dim[1] == OUT && cnt[0] == 4 && cnt[1] == 2);
    rl_graph_free(fz.g);

    CHECK_MSG(build(&tr, vit, "adamw", &e) == 0, "%s", e.msg);
    CHECK(tr.vis->needs_backward);
    float first = run_loss(&tr);
    CHECK_MSG(first == l_frozen && memcmp(emb_frozen, rl_f32(&tr.vis->out[0]), sizeof emb_frozen) == 0,
              "trainable and frozen forwards differ (%g vs %g)", first, l_frozen);
    float last = first;
    for (int i = 0; i < 40; i++) last = run_loss(&tr);
    printf("vision_encoder + AdamW: mse %.4f -> %.4f after 40 steps\n", first, last);
    CHECK_MSG(last < 0.3f * first, "loss did not fall: %g -> %g", first, last);

    /* A smaller batch in the same plan, then back; no allocation once warm. */
    g_case = 1;
    run_loss(&tr);
    CHECK(tr.vis->out[0].shape.dim[0] == 1 && tr.vis->out[1].shape.dim[0] == 1 && rl_i32(&tr.vis->out[1])[0] == 1);
    g_case = 0;
    run_loss(&tr);
    uint64_t before = rl_alloc_count();
    for (int i = 0; i < 4; i++) {
        g_case = i & 1;
        run_loss(&tr);
    }
    CHECK_MSG(rl_alloc_count() == before, "steady-state steps allocated %llu times",
              (unsigned long long)(rl_alloc_count() - before));
    g_case = 0;
    rl_graph_free(tr.g);
    rl_object_release(vit);
}

static void test_grad_fd(void) {
    rl_error e = {0};
    g_case = 0;
    rl_object *vit = new_vit(5);
    rl_params *p = rl_object_params(vit);
    built b;
    CHECK_MSG(build(&b, vit, "sink", &e) == 0, "%s", e.msg);
    float *ana = rl_malloc(p->numel * sizeof(float));
    rl_test_grad_copy[0] = ana;
    run_loss(&b);
    rl_test_grad_copy[0] = NULL;
    double err = rl_test_gradcheck(p->data, p->numel, ana, loss_f, &b, 3e-2, 100);
    CHECK_MSG(err < 3e-2, "graph gradient vs finite differences: rel err %g", err);
    rl_free(ana);
    rl_graph_free(b.g);
    rl_object_release(vit);
}

static void test_bad_inputs(void) {
    rl_error e = {0};
    rl_object *vit = new_vit(1);
    built b;
    /* Wrong pixel row size: a compile-time error naming the port and the expected size. */
    g_cols = 11;
    CHECK(build(&b, vit, NULL, &e) != 0);
    CHECK_MSG(strstr(e.msg, "vision_encoder") && strstr(e.msg, "vit.lua:2") && strstr(e.msg, "'pixels'") &&
                  strstr(e.msg, "= 12"), "%s", e.msg);
    rl_graph_free(b.g);
    g_cols = P;
    CHECK_MSG(build(&b, vit, "adamw", &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    g_case = 2;
    CHECK(rl_graph_run(b.g, NULL, &ctx, &e) != 0);
    CHECK_MSG(strstr(e.msg, "vit.lua:2") && strstr(e.msg, "image 0") && strstr(e.msg, "3 x 4") &&
                  strstr(e.msg, "multiples of patch x merge = 4 pixels"), "%s", e.msg);
    g_case = 3;
    CHECK(rl_graph_run(b.g, NULL, &ctx, &e) != 0);
    CHECK_MSG(strstr(e.msg, "12 patches") && strstr(e.msg, "24 pixel rows"), "%s", e.msg);
    g_case = 0;
    CHECK_MSG(rl_graph_run(b.g, NULL, &ctx, &e) == 0, "recovers after bad batches: %s", e.msg);
    rl_graph_free(b.g);
    /* The net option must be a vit. */
    rl_params *pp = rl_params_new("other", 1);
    rl_object *po = rl_params_object(pp);
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", po);
    CHECK(rl_graph_add(g, rl_node_type_find("vision_encoder"), NULL, "vit.lua:9", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "net") && strstr(e.msg, "vit"), "%s", e.msg);
    rl_opts_free(&o);
    rl_graph_free(g);
    rl_object_release(po);
    rl_object_release(vit);
}

static const char SCRIPT[] =
    "local rlfr = require 'rlfr'\n"
    "local dir = ...\n"
    "local v = rlfr.new_vit{ patch = 2, width = 16, depth = 2, heads = 2, mlp = 24, out_hidden = 8, seed = 4 }\n"
    "assert(v.type == 'vit')\n"
    "rlfr.save_vit(v, dir)\n"
    "local w = rlfr.load_vit(dir)\n"
    "assert(w.type == 'vit')\n"
    "local ok, err = pcall(rlfr.new_vit, { width = 16, depth = 1, heads = 2, out_hidden = 8, pach = 2 })\n"
    "assert(not ok and err:find(\"unknown option 'pach'\"), err)\n"
    "ok, err = pcall(rlfr.new_vit, { width = 18, depth = 1, heads = 3, out_hidden = 8 })\n"
    "assert(not ok and err:find('multiple of 4'), err)\n"
    "ok, err = pcall(rlfr.load_vit, dir .. '/missing')\n"
    "assert(not ok and err:find('vision.safetensors'), err)\n"
    "local g = rlfr.graph 'opt'\n"
    "g:optimizer { params = v }\n"
    "g:vision_encoder { net = w }\n"
    "ok, err = pcall(function() return g:vision_encoder { net = rlfr.params { name = 'x' } } end)\n"
    "assert(not ok and err:find('must be a vit'), err)\n"
    "return v, w\n";

static void test_lua(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/rlfr_test_vit_%d", (int)getpid());
    rlfr_script_args a = {.script = "vit.lua", .mode = "run"};
    lua_State *L = rlfr_lua_new(&a);
    CHECK(L != NULL);
    if (!L) return;
    int rc = luaL_loadstring(L, SCRIPT);
    if (rc == LUA_OK) {
        lua_pushstring(L, dir);
        rc = lua_pcall(L, 1, 2, 0);
    }
    CHECK_MSG(rc == LUA_OK, "lua: %s", lua_tostring(L, -1));
    if (rc == LUA_OK) {
        rl_vit *v = rl_vit_from_object(rlfr_to_object(L, -2)), *w = rl_vit_from_object(rlfr_to_object(L, -1));
        CHECK(v && w && v->params->numel == w->params->numel && w->cfg.depth == 2 && w->cfg.mlp == 24 &&
              memcmp(v->params->data, w->params->data, v->params->numel * sizeof(float)) == 0);
        /* The object exposes its parameter set (what optimizer{params = v} reads). */
        CHECK(v && rl_object_params(rlfr_to_object(L, -2)) == v->params);
    }
    lua_close(L);
    char path[320];
    snprintf(path, sizeof path, "%s/vision.safetensors", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/vision_config.json", dir);
    remove(path);
    rmdir(dir);
}

/* Files: a config naming more blocks than the tensors hold, or lacking a
 * key: one clear line each, naming the file and the tensor / key. */
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_files(void) {
    rl_error e = {0};
    char dir[256], cfgp[320], stp[320];
    snprintf(dir, sizeof dir, "/tmp/rlfr_test_vitf_%d", (int)getpid());
    snprintf(cfgp, sizeof cfgp, "%s/vision_config.json", dir);
    snprintf(stp, sizeof stp, "%s/vision.safetensors", dir);
    rl_object *vit = new_vit(2);
    CHECK_MSG(rl_mkdirs(dir, &e) == 0 && rl_vit_save(rl_vit_from_object(vit), dir, &e) == 0, "%s", e.msg);
    rl_vit *back = rl_vit_load(dir, &e);
    CHECK_MSG(back && back->cfg.width == 16 && back->cfg.merge == 2, "%s", e.msg);
    rl_vit_free(back);
    write_text(cfgp, "{\"patch_size\": 2, \"in_channels\": 3, \"embed_dim\": 16, \"depth\": 2, \"num_heads\": 2, "
                     "\"mlp_dim\": 32, \"hidden_size\": 8, \"spatial_merge_size\": 2}");
    CHECK(rl_vit_load(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "vision.safetensors") && strstr(e.msg, "missing tensor 'blocks.1."), "%s", e.msg);
    write_text(cfgp, "{\"patch_size\": 2, \"in_channels\": 3, \"depth\": 1}");
    CHECK(rl_vit_load(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "vision_config.json") && strstr(e.msg, "embed_dim"), "%s", e.msg);
    /* Without the JSON the config comes from the safetensors metadata. */
    remove(cfgp);
    back = rl_vit_load(dir, &e);
    CHECK_MSG(back && back->cfg.depth == 1 && back->cfg.mlp == 32, "%s", e.msg);
    rl_vit_free(back);
    remove(stp);
    rmdir(dir);
    rl_object_release(vit);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_test_fill(g_pixels, NMAX * P, 71);
    rl_test_fill(g_target, NMAX / 4 * OUT, 72);
    test_train_and_frozen();
    test_grad_fd();
    test_bad_inputs();
    test_lua();
    test_files();
    return rl_test_finish("test_vit_node");
}
