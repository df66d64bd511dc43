"""git clone through the real API, from real git servers on an outside host the sandbox
reaches through its own network: git's smart-HTTP backend behind nginx (public, and
private with basic auth) and git daemon."""
import os
import signal

from harness import Node, OutsideHost, delete_all_and_expect_nothing_left, expect, expect_error, main, test

HOST = OutsideHost.ADDRESSES[0]
PUBLIC = f"http://{HOST}:8081/public/repo.git"
PRIVATE = f"http://{HOST}:8081/private/repo.git"


def clone(ctx, **body):
    return ctx["node"].request("POST", f"/v1/sandboxes/{ctx['sid']}/git/clone", body, timeout=120)


def sh(ctx, cmd):
    return ctx["node"].shell(ctx["sid"], cmd).json["stdout"]


@test
def public_repository_over_http(ctx):
    r = clone(ctx, url=PUBLIC)
    expect(r.status == 200, r)
    expect(r.json == {"path": "/home/user/repo", "commit": ctx["commits"]["main"], "branch": "main"}, r.json)
    expect(sh(ctx, "cat ~/repo/file1.txt; stat -c %U ~/repo/file0.txt") == "content 1\nuser\n")


@test
def private_repository_with_good_and_bad_credentials(ctx):
    expect_error(clone(ctx, url=PRIVATE, path="p0"), 403, "credentials")
    expect_error(clone(ctx, url=PRIVATE, path="p1", username="tester", password="wrong"), 403, "refused")
    # Good credentials, another failure: said as it is, not as a refusal.
    expect_error(clone(ctx, url=PRIVATE, path="p4", username="tester", password="s3cret", branch="nope"), 404,
                 "branch")
    r = clone(ctx, url=PRIVATE, path="p2", username="tester", password="s3cret")
    expect(r.status == 200 and r.json["commit"] == ctx["commits"]["main"], r)
    # Credentials in the URL work too; none is kept in the clone.
    r = clone(ctx, url=PRIVATE.replace("http://", "http://tester:s3cret@"), path="p3")
    expect(r.status == 200, r)
    config = sh(ctx, "cat ~/p2/.git/config ~/p3/.git/config")
    expect("s3cret" not in config and "tester" not in config and PRIVATE in config, config)
    log = open(f"{ctx['node'].state}/logs/warrend.log").read()
    expect("s3cret" not in log, "a password reached the log")


@test
def private_repository_over_https(ctx):
    # The sandbox trusts the test's CA the way a user would: in its own CA bundle.
    ctx["node"].shell(ctx["sid"], f"cat >> /etc/ssl/certs/ca-certificates.crt <<'EOF'\n{ctx['ca']}EOF", user="root")
    node = ctx["node"]
    with open(f"{node.state}/dns/hosts", "a") as f:
        f.write(f"{HOST} {OutsideHost.GIT_NAME}\n")
    with open(f"{node.state}/run/dnsmasq.pid") as f:
        os.kill(int(f.read()), signal.SIGHUP)
    url = f"https://{OutsideHost.GIT_NAME}:8444/private/repo.git"
    expect_error(clone(ctx, url=url, path="s1", username="tester", password="nope"), 403)
    r = clone(ctx, url=url, path="s2", username="tester", password="s3cret")
    expect(r.status == 200 and r.json["commit"] == ctx["commits"]["main"], r)
    expect("s3cret" not in sh(ctx, "cat ~/s2/.git/config"))


@test
def branch_commit_and_git_daemon(ctx):
    r = clone(ctx, url=PUBLIC, path="b", branch="feature")
    expect(r.status == 200 and r.json["branch"] == "feature" and r.json["commit"] == ctx["commits"]["feature"], r)
    expect(sh(ctx, "ls ~/b") == "file0.txt\nfile1.txt\nfile2.txt\n")
    first = ctx["commits"]["first"]
    r = clone(ctx, url=PUBLIC, path="c", commit=first[:12])
    expect(r.status == 200 and r.json["commit"] == first and r.json["branch"] is None, r)
    expect(sh(ctx, "ls ~/c; git -C ~/c rev-parse HEAD") == f"file0.txt\n{first}\n")
    r = clone(ctx, url=f"git://{HOST}/public/repo.git", path="d")
    expect(r.status == 200 and r.json["commit"] == ctx["commits"]["main"], r)


@test
def shallow_clones(ctx):
    main_commit, first = ctx["commits"]["main"], ctx["commits"]["first"]
    r = clone(ctx, url=PUBLIC, path="s_http", depth=1)
    expect(r.status == 200 and r.json["commit"] == main_commit and r.json["branch"] == "main", r)
    # One commit, marked shallow, with the files of the tip: what `git clone --depth 1` gives
    # (every branch is fetched, so the shallow list also names the tip of 'feature').
    out = sh(ctx, "cd ~/s_http && git rev-list --count HEAD && ls && git log --format=%s")
    expect(out == "1\nfile0.txt\nfile1.txt\ncommit 1\n", out)
    expect(main_commit in sh(ctx, "cat ~/s_http/.git/shallow").split())
    r = clone(ctx, url=PUBLIC, path="s_two", depth=2)
    expect(r.status == 200, r)
    expect(sh(ctx, "git -C ~/s_two rev-list --count HEAD") == "2\n")
    # The first commit is not in a depth-1 clone, and the error says why.
    expect_error(clone(ctx, url=PUBLIC, path="s_old", depth=1, commit=first), 404, "depth 1")
    r = clone(ctx, url=PUBLIC, path="s_feature", depth=1, branch="feature")
    expect(r.status == 200 and r.json["commit"] == ctx["commits"]["feature"], r)
    expect(sh(ctx, "git -C ~/s_feature rev-list --count HEAD") == "1\n")
    # Over git:// too (libgit2 before 1.9 needs Warren's repair of its stateful transport):
    # the same commits and the same shallow list as the http clone.
    r = clone(ctx, url=f"git://{HOST}/public/repo.git", path="s_git", depth=1)
    expect(r.status == 200 and r.json["commit"] == main_commit and r.json["branch"] == "main", r)
    expect(sh(ctx, "cd ~/s_git && git rev-list --count HEAD && ls") == "1\nfile0.txt\nfile1.txt\n")
    shallow = "sort ~/{}/.git/shallow"
    expect(sh(ctx, shallow.format("s_git")) == sh(ctx, shallow.format("s_http")))
    r = clone(ctx, url=f"git://{HOST}/public/repo.git", path="s_git_two", depth=2)
    expect(r.status == 200 and r.json["commit"] == main_commit, r)
    out = sh(ctx, "git -C ~/s_git_two rev-list --count HEAD && git -C ~/s_git_two fsck --no-progress && echo ok")
    expect(out == "2\nok\n", out)


@test
def errors_are_clear(ctx):
    expect_error(clone(ctx, url="http://nowhere.invalid/repo.git", path="e1"), 400, "resolve")
    expect_error(clone(ctx, url=PUBLIC, path="e2", branch="nope"), 404, "branch")
    expect_error(clone(ctx, url=PUBLIC, path="e3", commit="0123456789abcdef0123"), 404, "commit")
    expect_error(clone(ctx, url=f"http://{HOST}:8081/public/missing.git", path="e4"), 404)
    expect_error(clone(ctx, url=PUBLIC), 409, "not an empty folder")  # ~/repo exists
    # null is an absent field, as everywhere
    r = clone(ctx, url=PUBLIC, path="n1", branch=None, commit=None, username=None, password=None, depth=None)
    expect(r.status == 200 and r.json["commit"] == ctx["commits"]["main"], r)
    for depth in (0, -1, "1", 2**31 - 1, 2**40):
        expect_error(clone(ctx, url=PUBLIC, path="e5", depth=depth), 400, "depth")
    expect_error(clone(ctx, url="file:///etc"), 400, "url")
    expect_error(clone(ctx, url="ssh://x/y"), 400, "url")
    expect_error(clone(ctx), 400, "url")
    expect_error(ctx["node"].request("POST", "/v1/sandboxes/nosuch/git/clone", {"url": PUBLIC}), 404)


@test
def the_clone_uses_the_sandbox_network(ctx):
    node = ctx["node"]
    # The node's own API, as the host sees it, is not the sandbox's to reach.
    r = clone(ctx, url=f"http://127.0.0.1:{node.http_port}/v1/x.git", path="h1")
    expect(r.status >= 400, r)
    r = clone(ctx, url=f"http://{node.gateway}:{node.http_port}/v1/x.git", path="h2")
    expect(r.status >= 400 and ("refused" in r.json["error"] or "connect" in r.json["error"]), r)
    # With internet off, the outside server is out of reach too.
    node.request("POST", f"/v1/sandboxes/{ctx['sid']}/network", {"internet": False})
    r = clone(ctx, url=PUBLIC, path="h3")
    expect(r.status >= 400, r)
    node.request("POST", f"/v1/sandboxes/{ctx['sid']}/network", {"internet": True})
    expect(clone(ctx, url=PUBLIC, path="h4").status == 200)


@test
def nothing_is_left_on_the_host(ctx):
    delete_all_and_expect_nothing_left(ctx["node"])


def setup():
    node = Node(workers=2, threads=32).start()
    outside = OutsideHost()
    commits = outside.start_git_servers()
    r = node.request("POST", "/v1/sandboxes", {})
    assert r.status == 201, r
    return {"node": node, "outside": outside, "commits": commits, "sid": r.json["id"], "ca": outside.ca_pem}


def teardown(ctx):
    ctx["outside"].close()
    ctx["node"].destroy()


main(setup, teardown)
