"""Benchmark: git clone through the API against `git clone` of the same repository in the
same run.

  python3 tests/bench/bench_git.py [--mib 50] [--rounds 3]

A repository of about --mib MiB (random, so incompressible, files over a few commits) is
served by git daemon on the test's outside host. The API clones it into a sandbox
(libgit2, through the sandbox's network); the reference is `git clone` on the host from
the same server. Medians of --rounds each. Target: <= 1.5x.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node, OutsideHost  # noqa: E402


def median(v):
    return sorted(v)[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    outside = OutsideHost()
    node = None
    work = tempfile.mkdtemp(prefix="warren-bench-git-")
    try:
        outside.start_git_servers()
        repo = os.path.join(outside.dir, "http", "public", "big.git")
        src = os.path.join(work, "src")
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        subprocess.run(["git", "init", "-q", "-b", "main", src], check=True)
        per_commit = max(1, args.mib // 5)
        for c in range(5):
            for i in range(per_commit):
                with open(os.path.join(src, f"f{c}_{i}.bin"), "wb") as f:
                    f.write(os.urandom(1 << 20))
            subprocess.run(["git", "-C", src, "add", "."], check=True, env=env)
            subprocess.run(["git", "-C", src, "commit", "-q", "-m", f"c{c}"], check=True, env=env)
        subprocess.run(["git", "clone", "-q", "--bare", src, repo], check=True)
        url = f"git://{OutsideHost.ADDRESSES[0]}/public/big.git"

        node = Node(workers=2, threads=32).start()
        sid = node.request("POST", "/v1/sandboxes", {"disk_mb": 1024, "memory_mb": 1536}).json["id"]
        api, ref = [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            r = node.request("POST", f"/v1/sandboxes/{sid}/git/clone", {"url": url, "path": f"c{i}"}, timeout=600)
            api.append(time.perf_counter() - t0)
            assert r.status == 200, r
            node.shell(sid, f"rm -rf ~/c{i}")
            dst = os.path.join(work, f"ref{i}")
            t0 = time.perf_counter()
            subprocess.run(["git", "clone", "-q", url, dst], check=True)
            ref.append(time.perf_counter() - t0)
            subprocess.run(["rm", "-rf", dst])
        a, g = median(api), median(ref)
        print(f"clone of a {args.mib} MiB repository: API {a * 1000:.0f} ms, git clone {g * 1000:.0f} ms, "
              f"ratio {a / g:.2f} (target <= 1.5)")
    finally:
        if node:
            node.destroy()
        outside.close()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
