#include "bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "checkpoint.h"

struct rl_bundle {
    char dir[4096];
    char temp_root[4096]; /* non-empty when we extracted an archive */
};

const char *rl_bundle_dir(const rl_bundle *b) { return b->dir; }

const char *rl_bundle_file(const rl_bundle *b, const char *name, char *buf, size_t cap) {
    return snprintf(buf, cap, "%s/%s", b->dir, name) < (int)cap ? buf : NULL;
}

int rl_bundle_has(const rl_bundle *b, const char *name) {
    char p[4200];
    struct stat st;
    return rl_bundle_file(b, name, p, sizeof p) && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* An archive member name is safe when relative, without "..", and not empty. */
static int safe_name(const char *name) {
    if (!name || !name[0] || name[0] == '/') return 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

static int extract(const char *archive_path, const char *root, rl_error *err) {
    struct archive *a = archive_read_new();
    if (!a) return rl_fail(err, "out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK) {
        rc = rl_fail(err, "%s: not a readable archive: %s", archive_path, archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    struct archive_entry *e;
    int r;
    char buf[1 << 16];
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        mode_t type = archive_entry_filetype(e);
        if (!safe_name(name)) { rc = rl_fail(err, "%s: unsafe path '%s' in archive", archive_path, name ? name : ""); break; }
        if (archive_entry_hardlink(e) || type == AE_IFLNK) {
            rc = rl_fail(err, "%s: archive member '%s' is a link (not allowed in a bundle)", archive_path, name);
            break;
        }
        char path[8192];
        if (snprintf(path, sizeof path, "%s/%s", root, name) >= (int)sizeof path) { rc = rl_fail(err, "path too long"); break; }
        if (type == AE_IFDIR) {
            if (rl_mkdirs(path, err)) { rc = -1; break; }
            continue;
        }
        if (type != AE_IFREG) { rc = rl_fail(err, "%s: archive member '%s' is not a regular file", archive_path, name); break; }
        char *slash = strrchr(path, '/');
        *slash = '\0';
        if (rl_mkdirs(path, err)) { rc = -1; break; }
        *slash = '/';
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
        if (fd < 0) { rc = rl_fail(err, "%s: cannot extract '%s': %s", archive_path, name, strerror(errno)); break; }
        la_ssize_t got;
        while ((got = archive_read_data(a, buf, sizeof buf)) > 0)
            if (write(fd, buf, (size_t)got) != got) { got = -2; break; }
        close(fd);
        if (got < 0) {
            rc = rl_fail(err, "%s: truncated or corrupt archive (member '%s'): %s", archive_path, name,
                         got == -2 ? strerror(errno) : archive_error_string(a));
            break;
        }
    }
    if (!rc && r != ARCHIVE_EOF) rc = rl_fail(err, "%s: truncated or corrupt archive: %s", archive_path, archive_error_string(a));
    archive_read_free(a);
    return rc;
}

int rl_bundle_open(const char *path, rl_bundle **out, rl_error *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st)) return rl_fail(err, "%s: no such model bundle (%s)", path, strerror(errno));
    rl_bundle *b = rl_calloc(1, sizeof *b);
    if (!b) return rl_fail(err, "out of memory");
    if (S_ISDIR(st.st_mode)) {
        snprintf(b->dir, sizeof b->dir, "%s", path);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(b->temp_root, sizeof b->temp_root, "%s/rlfr-bundle-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(b->temp_root)) {
            rl_free(b);
            return rl_fail(err, "cannot create a temporary directory: %s", strerror(errno));
        }
        if (extract(path, b->temp_root, err)) { rl_bundle_close(b); return -1; }
        snprintf(b->dir, sizeof b->dir, "%s", b->temp_root);
        /* An archive of the directory itself ("arith-tiny/config.json"): descend. */
        if (!rl_bundle_has(b, "config.json")) {
            DIR *d = opendir(b->temp_root);
            struct dirent *e;
            int subdirs = 0;
            char only[4096] = {0};
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.') continue;
                subdirs++;
                snprintf(only, sizeof only, "%s", e->d_name);
            }
            if (d) closedir(d);
            if (subdirs == 1) {
                char sub[8192];
                snprintf(sub, sizeof sub, "%s/%s", b->temp_root, only);
                snprintf(b->dir, sizeof b->dir, "%.4095s", sub);
            }
        }
    }
    if (!rl_bundle_has(b, "config.json")) {
        rl_bundle_close(b);
        return rl_fail(err, "%s: model bundle has no config.json", path);
    }
    *out = b;
    return 0;
}

void rl_bundle_close(rl_bundle *b) {
    if (!b) return;
    if (b->temp_root[0]) {
        rl_error e = {0};
        rl_remove_tree(b->temp_root, &e);
    }
    rl_free(b);
}

int rl_bundle_pack(const char *dir, const char *out_path, rl_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid()) >= (int)sizeof tmp)
        return rl_fail(err, "%s: path too long", out_path);
    DIR *d = opendir(dir);
    if (!d) return rl_fail(err, "%s: %s", dir, strerror(errno));
    struct archive *a = archive_write_new();
    archive_write_add_filter_zstd(a);
    archive_write_set_format_pax_restricted(a);
    int rc = 0;
    if (archive_write_open_filename(a, tmp) != ARCHIVE_OK)
        rc = rl_fail(err, "%s: cannot write: %s", tmp, archive_error_string(a));
    struct dirent *de;
    char buf[1 << 16];
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (lstat(path, &st) || !S_ISREG(st.st_mode)) continue;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, de->d_name);
        archive_entry_set_size(e, st.st_size);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, st.st_mtime, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) rc = rl_fail(err, "%s: %s", tmp, archive_error_string(a));
        FILE *f = rc ? NULL : fopen(path, "rb");
        if (!rc && !f) rc = rl_fail(err, "%s: %s", path, strerror(errno));
        size_t got;
        while (f && (got = fread(buf, 1, sizeof buf, f)) > 0)
            if (archive_write_data(a, buf, got) < 0) { rc = rl_fail(err, "%s: %s", tmp, archive_error_string(a)); break; }
        if (f) fclose(f);
        archive_entry_free(e);
    }
    closedir(d);
    if (archive_write_close(a) != ARCHIVE_OK && !rc) rc = rl_fail(err, "%s: %s", tmp, archive_error_string(a));
    archive_write_free(a);
    if (!rc && rename(tmp, out_path)) rc = rl_fail(err, "%s: cannot write: %s", out_path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}
