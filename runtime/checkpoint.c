#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rl_mkdirs(const char *path, rl_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return rl_fail(err, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST) return rl_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return rl_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

int rl_remove_tree(const char *path, rl_error *err) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : rl_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path)) return rl_fail(err, "%s: cannot remove: %s", path, strerror(errno));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return rl_fail(err, "%s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[4096];
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child) rc = rl_fail(err, "path too long");
        else rc = rl_remove_tree(child, err);
    }
    closedir(d);
    if (!rc && rmdir(path)) rc = rl_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    return rc;
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rl_write_file_atomic(const char *path, const void *data, size_t bytes, rl_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rl_fail(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return rl_fail(err, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fwrite(data, 1, bytes, f) == bytes && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return rl_fail(err, "%s: cannot write: %s", path, strerror(errno));
    }
    return 0;
}

static int ckpt_name(char *out, size_t cap, const char *run_dir, int64_t step, const char *suffix) {
    return snprintf(out, cap, "%s/ckpt-%08lld%s", run_dir, (long long)step, suffix) >= (int)cap ? -1 : 0;
}

int rl_ckpt_begin(const char *run_dir, int64_t step, char *tmp_dir, size_t cap, rl_error *err) {
    if (rl_mkdirs(run_dir, err)) return -1;
    if (ckpt_name(tmp_dir, cap, run_dir, step, ".tmp")) return rl_fail(err, "%s: path too long", run_dir);
    if (rl_remove_tree(tmp_dir, err)) return -1;
    if (mkdir(tmp_dir, 0755)) return rl_fail(err, "%s: cannot create: %s", tmp_dir, strerror(errno));
    return 0;
}

/* Steps of the complete checkpoints in run_dir, ascending; returns the count. */
static int list_ckpts(const char *run_dir, int64_t *steps, int cap) {
    DIR *d = opendir(run_dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld%7s", &s, tail) == 1 && strlen(e->d_name) == 13 && n < cap) steps[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) { int64_t t = steps[j]; steps[j] = steps[j - 1]; steps[j - 1] = t; }
    return n;
}

int rl_ckpt_commit(const char *run_dir, int64_t step, int keep, rl_error *err) {
    char tmp[4096], final[4096], latest[4096];
    if (ckpt_name(tmp, sizeof tmp, run_dir, step, ".tmp") || ckpt_name(final, sizeof final, run_dir, step, ""))
        return rl_fail(err, "%s: path too long", run_dir);
    /* Make the files durable before the directory becomes visible. */
    DIR *d = opendir(tmp);
    if (!d) return rl_fail(err, "%s: %s", tmp, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        char f[4096];
        if (e->d_name[0] == '.') continue;
        if (snprintf(f, sizeof f, "%s/%s", tmp, e->d_name) < (int)sizeof f) fsync_path(f, 0);
    }
    closedir(d);
    fsync_path(tmp, 1);
    if (rl_remove_tree(final, err)) return -1;
    if (rename(tmp, final)) return rl_fail(err, "%s: cannot publish checkpoint: %s", final, strerror(errno));
    fsync_path(run_dir, 1);
    char text[64];
    int len = snprintf(text, sizeof text, "ckpt-%08lld\n", (long long)step);
    snprintf(latest, sizeof latest, "%s/latest", run_dir);
    if (rl_write_file_atomic(latest, text, (size_t)len, err)) return -1;
    int64_t steps[1024];
    int n = list_ckpts(run_dir, steps, 1024);
    if (keep < 1) keep = 1;
    for (int i = 0; i < n - keep; i++) {
        if (steps[i] == step) continue;
        char old[4096];
        if (!ckpt_name(old, sizeof old, run_dir, steps[i], "")) rl_remove_tree(old, err);
    }
    return 0;
}

int rl_ckpt_latest(const char *run_dir, char *dir, size_t cap, int64_t *step, rl_error *err) {
    char latest[4096], text[64] = {0};
    snprintf(latest, sizeof latest, "%s/latest", run_dir);
    FILE *f = fopen(latest, "rb");
    long long s = -1;
    if (f) {
        size_t got = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[got] = '\0';
        if (sscanf(text, "ckpt-%lld", &s) != 1) s = -1;
    }
    if (s >= 0) {
        struct stat st;
        if (ckpt_name(dir, cap, run_dir, s, "")) return rl_fail(err, "%s: path too long", run_dir);
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) { if (step) *step = s; return 1; }
    }
    /* `latest` missing or stale: fall back to the newest complete directory. */
    int64_t steps[1024];
    int n = list_ckpts(run_dir, steps, 1024);
    if (n == 0) return 0;
    if (ckpt_name(dir, cap, run_dir, steps[n - 1], "")) return rl_fail(err, "%s: path too long", run_dir);
    if (step) *step = steps[n - 1];
    return 1;
}
