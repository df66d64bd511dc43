/* The languages code runs in; see languages.h. */
#include "languages.h"

#include <stddef.h>
#include <string.h>

static const struct language languages[] = {
    {"python", {"python3", "-u", "-", NULL}, {"python3", "-u", "/opt/warren/kernels/python.py", NULL}},
    {"javascript", {"node", "-", NULL}, {"node", "/opt/warren/kernels/node.js", "javascript", NULL}},
    {"typescript",
     {"/opt/warren/bin/run-typescript", NULL},
     {"node", "/opt/warren/kernels/node.js", "typescript", NULL}},
    {"bash", {"bash", "-s", NULL}, {"bash", "--noprofile", "--norc", "/opt/warren/kernels/bash.sh", NULL}},
    {"r", {"/opt/warren/bin/run-r", NULL}, {"Rscript", "--vanilla", "/opt/warren/kernels/r.R", NULL}},
    {"java",
     {"/opt/warren/bin/run-java", NULL},
     {"java", "--source", "17", "/opt/warren/kernels/Kernel.java", NULL}},
};

const struct language *language_find(const char *name)
{
        for (size_t i = 0; name && i < sizeof languages / sizeof *languages; i++)
                if (strcmp(languages[i].name, name) == 0)
                        return &languages[i];
        return NULL;
}
