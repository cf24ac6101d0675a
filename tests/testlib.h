/* Minimal test harness: CHECK macros that count, and helpers shared by tests
 * (closeness, finite-difference gradient checks, source-dir paths). */
#ifndef RL_TESTLIB_H
#define RL_TESTLIB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int rl_test_failures;
extern int rl_test_checks;

#define CHECK(cond) do { rl_test_checks++; if (!(cond)) { rl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { rl_test_checks++; if (!(cond)) { rl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* An optimizer node type for graph tests ("t_sink"): options `params` (the
 * set it owns) and `slot` (int, default 0); its step copies the set's
 * gradient into rl_test_grad_copy[slot] when that is not NULL, then zeroes
 * the gradient. */
struct rl_node_type;
extern const struct rl_node_type rl_test_grad_sink;
extern float *rl_test_grad_copy[2];

/* Connects input `in` of dst to output `out` of src by port name; a failure
 * is a failed CHECK naming the ports and the graph's error. */
struct rl_graph;
struct rl_node;
void rl_test_connect(struct rl_graph *g, struct rl_node *dst, const char *in, struct rl_node *src, const char *out);

/* Prints "N passed, N failed" and returns the exit status. */
int rl_test_finish(const char *name);

/* max |a-b| / max(|b|, floor) over n elements; also reports the worst index. */
double rl_test_max_rel_err(const float *a, const float *b, size_t n, float floor, size_t *worst);

/* Finite-difference check of d(f)/d(x) for a scalar function of a float
 * vector: compares analytic[] with central differences at every element (or
 * at most max_checks evenly spread ones). f must be deterministic. Returns the
 * max relative error (|num-ana| / max(|num|+|ana|, 1e-3)). Works in double
 * where the caller's function computes in double; eps is the step. */
typedef double (*rl_test_scalar_fn)(void *ctx);
double rl_test_gradcheck(float *x, size_t n, const float *analytic, rl_test_scalar_fn f, void *ctx,
                         double eps, size_t max_checks);

/* "$RLFR_SOURCE_DIR/rel" (or argv[1]/rel), into a static buffer. */
const char *rl_test_path(const char *rel);
void rl_test_set_source_dir(const char *dir);

/* Deterministic pseudo-random floats in [-1, 1) for test inputs. */
void rl_test_fill(float *x, size_t n, uint64_t seed);

#endif
