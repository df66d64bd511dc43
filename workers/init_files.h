/* What a context's run wrote: the files under the kernel's working directory before and
 * after the run (warren-init's side, the same for every language). Bounded: at most
 * FILES_MAX entries, hidden directories and other mounts skipped, symlinks not followed. */
#pragma once

#include <stddef.h>

#define FILES_MAX 2000

struct file_entry {
        char *path;
        long long mtime_ns, size;
};

struct file_snapshot {
        struct file_entry *e;
        size_t n;
};

/* Takes a snapshot of dir (an absolute path); an unreadable dir gives an empty one. */
void files_snapshot(const char *dir, struct file_snapshot *ret);
/* Calls fn for every regular file under dir now that is new or changed since before. */
void files_changed(const struct file_snapshot *before, const char *dir,
                   void (*fn)(void *arg, const char *path, long long size), void *arg);
void files_snapshot_free(struct file_snapshot *s);
