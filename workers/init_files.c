/* What a run wrote; see init_files.h. */
#include "init_files.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* nftw takes no argument for its callback: the walk in progress (warren-init has one thread). */
static struct file_snapshot *walking;
static dev_t walking_dev;
static size_t walking_visits; /* every entry counts: a million empty directories too */

#define VISITS_MAX (10 * FILES_MAX)

static int take(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        const char *name = path + ftw->base;
        if (++walking_visits > VISITS_MAX)
                return FTW_STOP;
        if (ftw->level > 0 && name[0] == '.' && type == FTW_D)
                return FTW_SKIP_SUBTREE; /* caches, virtualenvs, .git: not what a cell writes */
        /* Other mounts (/proc, /sys, /dev, the host's /usr) are not the cell's files. Only
         * directories are compared: on an overlay, a file reports the device of the layer
         * it lives on, not the overlay's (FTW_MOUNT would lose every file). */
        if (type == FTW_D && st->st_dev != walking_dev)
                return FTW_SKIP_SUBTREE;
        if (type != FTW_F)
                return FTW_CONTINUE;
        if (walking->n == FILES_MAX)
                return FTW_STOP;
        if (walking->n % 64 == 0) {
                struct file_entry *ne = realloc(walking->e, (walking->n + 64) * sizeof *ne);
                if (!ne)
                        return FTW_STOP;
                walking->e = ne;
        }
        char *copy = strdup(path);
        if (!copy)
                return FTW_STOP;
        walking->e[walking->n++] = (struct file_entry){
            .path = copy,
            .mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
            .size = (long long)st->st_size,
        };
        return FTW_CONTINUE;
}

static int by_path(const void *a, const void *b)
{
        return strcmp(((const struct file_entry *)a)->path, ((const struct file_entry *)b)->path);
}

void files_snapshot(const char *dir, struct file_snapshot *ret)
{
        *ret = (struct file_snapshot){0};
        struct stat st;
        if (stat(dir, &st) < 0)
                return;
        walking = ret;
        walking_dev = st.st_dev;
        walking_visits = 0;
        nftw(dir, take, 16, FTW_PHYS | FTW_ACTIONRETVAL);
        walking = NULL;
        if (ret->n > 1)
                qsort(ret->e, ret->n, sizeof *ret->e, by_path);
}

void files_changed(const struct file_snapshot *before, const char *dir,
                   void (*fn)(void *arg, const char *path, long long size), void *arg)
{
        struct file_snapshot after;
        files_snapshot(dir, &after);
        for (size_t i = 0; i < after.n; i++) {
                const struct file_entry *was =
                    before->n ? bsearch(&after.e[i], before->e, before->n, sizeof *before->e, by_path) : NULL;
                if (!was || was->mtime_ns != after.e[i].mtime_ns || was->size != after.e[i].size)
                        fn(arg, after.e[i].path, after.e[i].size);
        }
        files_snapshot_free(&after);
}

void files_snapshot_free(struct file_snapshot *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->e[i].path);
        free(s->e);
        *s = (struct file_snapshot){0};
}
