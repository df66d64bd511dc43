/* warren-git: clones a repository with libgit2, run inside a sandbox as its user (so with
 * the sandbox's network, filesystem and permissions, never the host's). The request comes
 * on stdin, so that credentials are in no argv or environment:
 *
 *   {"url", "path"?, "branch"?, "commit"?, "username"?, "password"?, "depth"?}
 *
 * and the answer is one JSON line on stdout: {"path", "commit", "branch"} (exit 0), or
 * {"error", "code"} (exit 1), code one of bad_request, unknown_host, auth_failed,
 * repository_not_found, branch_not_found, commit_not_found, path_not_empty, clone_failed.
 * Credentials given in the URL are taken out of it, so the clone's remote keeps none.
 * A depth makes a shallow clone of that many commits (libgit2 1.7 and later; over git://
 * through git_daemon_transport, which repairs libgit2 before 1.9). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <git2.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git_daemon_transport.h"

/* A one-shot process: whatever it holds goes with it when it exits, on every path. Under
 * LeakSanitizer (the sanitizer builds) that would be reported as leaks of libgit2's and
 * jansson's objects at each early exit; the report is switched off for this program only. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "detect_leaks=0";
}
#endif

struct creds {
        char user[512], pass[1024];
        bool given, asked;
        int tries;
};

static _Noreturn void fail(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void fail(const char *code, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        json_t *out = json_pack("{s:s, s:s}", "error", msg, "code", code);
        char *text = json_dumps(out, JSON_COMPACT);
        puts(text ? text : "{\"error\":\"out of memory\",\"code\":\"clone_failed\"}");
        exit(1);
}

static int credentials(git_credential **out, const char *url, const char *user_from_url, unsigned allowed,
                       void *payload)
{
        (void)url;
        (void)user_from_url;
        struct creds *c = payload;
        c->asked = true;
        /* Asked again means the server refused them: no second try with the same. */
        if (!c->given || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) || c->tries++ > 0)
                return GIT_EAUTH;
        return git_credential_userpass_plaintext_new(out, c->user, c->pass);
}

/* https://user:pass@host/… → https://host/…, user and pass into c (unless given apart). */
static void strip_userinfo(char *url, struct creds *c)
{
        char *scheme = strstr(url, "://");
        if (!scheme)
                return;
        char *host = scheme + 3, *at = strchr(host, '@'), *slash = strchr(host, '/');
        if (!at || (slash && at > slash))
                return;
        *at = 0;
        char *colon = strchr(host, ':');
        if (!c->given) {
                if (colon)
                        *colon = 0;
                snprintf(c->user, sizeof c->user, "%s", host);
                snprintf(c->pass, sizeof c->pass, "%s", colon ? colon + 1 : "");
                c->given = true;
        }
        memmove(host, at + 1, strlen(at + 1) + 1);
}

static bool dir_has_entries(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return errno != ENOENT;
        struct dirent *e;
        bool any = false;
        while (!any && (e = readdir(d)))
                any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        return any;
}

static _Noreturn void clone_failed(const struct creds *c, const char *branch)
{
        const git_error *e = git_error_last();
        const char *msg = e && e->message ? e->message : "unknown error";
        if (c->asked && !c->given)
                fail("auth_failed", "the repository needs credentials (username and password)");
        if (strstr(msg, "resolve") || strstr(msg, "Resolving") || strstr(msg, "Name or service"))
                fail("unknown_host", "cannot resolve the repository's host: %s", msg);
        /* libgit2's last error after a refusal may be about something else entirely (1.8 leaves
         * a config lookup's there), so a refusal of the given credentials says only that. */
        if (c->tries > 1) /* asked again after the first answer: refused */
                fail("auth_failed", "the server refused the credentials");
        if (strstr(msg, "authentication") || strstr(msg, "401") ||
            strstr(msg, "too many redirects or authentication"))
                fail("auth_failed", "the server refused the credentials: %s", msg);
        if (branch && strstr(msg, "reference") && strstr(msg, "not found"))
                fail("branch_not_found", "no branch '%s' in the repository", branch);
        if (strstr(msg, "404") || strstr(msg, "not found") || strstr(msg, "not exported") ||
            strstr(msg, "does not appear to be a git repository"))
                fail("repository_not_found", "no repository at that URL: %s", msg);
        if (strstr(msg, "credentials") || strstr(msg, "authentication required"))
                fail("auth_failed", "the repository needs credentials: %s", msg);
        fail("clone_failed", "clone failed: %s", msg);
}

int main(void)
{
        json_error_t jerr;
        json_t *req = json_loadf(stdin, 0, &jerr);
        const char *url_in = json_string_value(json_object_get(req, "url"));
        if (!url_in)
                fail("bad_request", "the request needs a url");
        struct creds c = {0};
        const char *user = json_string_value(json_object_get(req, "username"));
        const char *pass = json_string_value(json_object_get(req, "password"));
        if (user || pass) {
                snprintf(c.user, sizeof c.user, "%s", user ? user : "");
                snprintf(c.pass, sizeof c.pass, "%s", pass ? pass : "");
                c.given = true;
        }
        char url[4096];
        snprintf(url, sizeof url, "%s", url_in);
        strip_userinfo(url, &c);
        const char *path = json_string_value(json_object_get(req, "path"));
        char derived[1024];
        if (!path) { /* like git: the last component of the URL, without .git */
                const char *last = strrchr(url, '/');
                snprintf(derived, sizeof derived, "%s", last && last[1] ? last + 1 : "repo");
                size_t n = strlen(derived);
                if (n > 4 && !strcmp(derived + n - 4, ".git"))
                        derived[n - 4] = 0;
                path = derived;
        }
        if (dir_has_entries(path))
                fail("path_not_empty", "'%s' exists and is not an empty folder", path);
        const char *branch = json_string_value(json_object_get(req, "branch"));
        const char *commit = json_string_value(json_object_get(req, "commit"));
        json_int_t depth = json_integer_value(json_object_get(req, "depth"));
        if (depth < 0 || depth >= INT_MAX) /* INT_MAX: libgit2's "unshallow" */
                fail("bad_request", "depth must be a positive number of commits");
        /* A server that hangs up mid-request must give an error, not kill the clone silently. */
        signal(SIGPIPE, SIG_IGN);
        git_libgit2_init();
        git_clone_options opts;
        git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
        opts.fetch_opts.callbacks.credentials = credentials;
        opts.fetch_opts.callbacks.payload = &c;
        if (!strncasecmp(url, "git://", 6))
                opts.fetch_opts.callbacks.transport = git_daemon_transport;
        opts.checkout_branch = branch;
        opts.fetch_opts.depth = (int)depth; /* 0: the whole history */
        git_repository *repo = NULL;
        if (git_clone(&repo, url, path, &opts) < 0)
                clone_failed(&c, branch);

        if (commit) {
                git_object *obj = NULL;
                if (git_revparse_single(&obj, repo, commit) < 0) {
                        char fetched[96] = "in the repository";
                        if (depth)
                                snprintf(fetched, sizeof fetched,
                                         "in the last %lld commits fetched (depth %lld); a deeper clone may "
                                         "have it",
                                         (long long)depth, (long long)depth);
                        fail("commit_not_found",
                             "no commit '%s' %s (the clone is left checked out at its branch)", commit,
                             fetched);
                }
                git_object *target = NULL;
                git_checkout_options co;
                git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
                co.checkout_strategy = GIT_CHECKOUT_SAFE;
                if (git_object_peel(&target, obj, GIT_OBJECT_COMMIT) < 0 ||
                    git_checkout_tree(repo, target, &co) < 0 ||
                    git_repository_set_head_detached(repo, git_object_id(target)) < 0)
                        clone_failed(&c, NULL);
                git_object_free(target);
                git_object_free(obj);
        }
        git_reference *head = NULL;
        git_oid oid;
        char hex[GIT_OID_HEXSZ + 1] = "";
        const char *branch_name = NULL;
        if (git_repository_head(&head, repo) == 0) {
                git_oid_cpy(&oid, git_reference_target(head));
                git_oid_tostr(hex, sizeof hex, &oid);
                if (git_reference_is_branch(head))
                        branch_name = git_reference_shorthand(head);
        }
        char *abs = realpath(path, NULL);
        json_t *out = json_pack("{s:s, s:s, s:o}", "path", abs ? abs : path, "commit", hex, "branch",
                                branch_name ? json_string(branch_name) : json_null());
        char *text = json_dumps(out, JSON_COMPACT);
        puts(text);
        free(text);
        free(abs);
        json_decref(out);
        git_reference_free(head);
        git_repository_free(repo);
        json_decref(req);
        git_libgit2_shutdown();
        return 0;
}
