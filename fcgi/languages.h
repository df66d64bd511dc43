/* The languages code runs in, in one table: how a fresh run starts a new interpreter (the
 * code on its stdin; the runners under /opt/warren/bin are in the sandbox template), and
 * the kernel a stateful context keeps (kernels/ in the source tree, /opt/warren/kernels in
 * the sandbox). */
#pragma once

#define LANGUAGE_NAMES "python, javascript, typescript, bash, r, java"

struct language {
        const char *name;
        const char *fresh_argv[4];
        const char *kernel_argv[5]; /* empty: no stateful context */
};

/* NULL when there is no such language. */
const struct language *language_find(const char *name);
