"""Benchmark: sandbox create, shell and delete through nginx, against references measured in
the same run on the same machine.

  python3 tests/bench/bench_sandbox.py [--rounds 200] [--idle 500]

1. create -> shell `echo hi` -> delete, `rounds` times: p50/p99 of each step, on a node with
   its warm pool (the default) and on one without (every create a cold start). Reference:
   `bwrap --unshare-all ... true` (Debian's bubblewrap), once before each round, so that each
   ratio compares figures taken in the same minutes.
   Target: create p50 no slower than the bare bwrap start.
2. shell `echo hi` in a running sandbox: p50 against fork+exec+wait of /bin/true on the host
   (tests/bench/spawn_true.c). Target: within 3x. Timed twice: by Python's http.client, and
   by a lean C client on a kept-alive connection (tests/bench/http_post_loop.c), which like
   the reference carries no library of its own into the figure. Also shown: fork+exec+wait of
   `bash -c 'echo hi'` on the host with the sandbox's locale, the part of the figure that is
   bash's own start, on the build the sandbox uses for it (bash-static where installed).
3. `idle` sandboxes at once: host memory per idle sandbox (MemAvailable before and after,
   and what their cgroups account). Target: <= 2 MiB each beyond the kernel's own.
"""
import argparse
import atexit
import functools
import json
import shutil
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(v):
    return f"{v:8.2f}"


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, (time.perf_counter() - t0) * 1000


BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
         "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--proc", "/proc",
         "--dev", "/dev", "--tmpfs", "/tmp", "true"]


def bwrap_once():
    return timed(lambda: subprocess.run(BWRAP, check=True))[1]


BUILT = tempfile.mkdtemp(prefix="warren-bench-")
atexit.register(shutil.rmtree, BUILT, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def compiled(name):
    exe = os.path.join(BUILT, name)
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(os.path.dirname(__file__), name + ".c")], check=True)
    return exe


def lean_client(node, key, path, body, rounds):
    out = subprocess.run([compiled("http_post_loop"), str(node.http_port), path, f"Authorization: Bearer {key}",
                          json.dumps(body), str(rounds)], capture_output=True, text=True, check=True).stdout
    return [int(x) / 1000 for x in out.split()]


def spawn_reference(rounds, *cmd, env=None):
    exe = compiled("spawn_true")
    out = subprocess.run([exe, str(rounds), *cmd], capture_output=True, text=True, check=True, env=env).stdout
    return [int(x) / 1000 for x in out.split()]


def lifecycle_rounds(node, key, rounds):
    """bwrap, then create -> shell echo hi -> delete, rounds times: the durations of each.
    The reference runs in turns with the steps it is compared with, so that a noisy host (a
    virtual machine's neighbours) weighs on both alike."""
    create, shell, delete, bwrap = [], [], [], []
    for _ in range(rounds):
        bwrap.append(bwrap_once())
        r, t = timed(lambda: node.request("POST", "/v1/sandboxes", {}, key=key))
        assert r.status == 201, r
        create.append(t)
        sid = r.json["id"]
        r, t = timed(lambda: node.shell(sid, "echo hi", key=key))
        assert r.json["stdout"] == "hi\n", r
        shell.append(t)
        r, t = timed(lambda: node.request("DELETE", f"/v1/sandboxes/{sid}", key=key))
        assert r.status == 200, r
        delete.append(t)
    return create, shell, delete, bwrap


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--idle", type=int, default=500)
    args = ap.parse_args()
    cold_node = Node(workers=2, threads=64, warm_pool_size=0).start()
    try:
        cold_key = cold_node.create_key("bench", rate=100000, burst=100000)["key"]
        cold = lifecycle_rounds(cold_node, cold_key, args.rounds)
    finally:
        cold_node.destroy()
    node = Node(workers=2, threads=64, max_sandboxes_per_node=args.idle + 10).start()
    try:
        key = node.create_key("bench", max_sandboxes=args.idle + 10, rate=100000, burst=100000)["key"]
        time.sleep(1)  # the warm pool fills
        create, shell, delete, bwrap = lifecycle_rounds(node, key, args.rounds)

        sid = node.sandbox(key=key)
        warm = [timed(lambda: node.shell(sid, "echo hi", key=key))[1] for _ in range(args.rounds)]
        lean = lean_client(node, key, f"/v1/sandboxes/{sid}/shell", {"cmd": "echo hi"}, args.rounds)
        node.request("DELETE", f"/v1/sandboxes/{sid}", key=key)
        spawn = spawn_reference(args.rounds)
        shell_bash = "/usr/bin/bash-static" if os.path.exists("/usr/bin/bash-static") else "/bin/bash"
        bash = spawn_reference(args.rounds, shell_bash, "-c", "echo hi",
                               env={"PATH": "/usr/bin:/bin", "LANG": "C.utf8"})

        print(f"\nWarren sandbox benchmark: {os.cpu_count()} cores, {args.rounds} rounds")
        print(f"{'step':<40}{'p50 ms':>10}{'p99 ms':>10}")
        for name, v in (("create, warm pool (API, through nginx)", create),
                        ("shell echo hi (new sandbox)", shell), ("delete", delete),
                        ("bwrap --unshare-all true (in turns)", bwrap),
                        ("create, cold (warm_pool_size = 0)", cold[0]),
                        ("shell echo hi (new cold sandbox)", cold[1]), ("delete (cold)", cold[2]),
                        ("bwrap, in turns with the cold rounds", cold[3]),
                        ("shell echo hi (running sandbox)", warm), ("  the same, lean C client", lean),
                        ("fork+exec+wait /bin/true", spawn),
                        (f"fork+exec+wait {os.path.basename(shell_bash)} -c 'echo hi'", bash)):
            print(f"{name:<40}{ms(pct(v, 50)):>10}{ms(pct(v, 99)):>10}")
        print(f"\ncreate p50 / bwrap p50: {pct(create, 50) / pct(bwrap, 50):.2f} with the warm pool, "
              f"{pct(cold[0], 50) / pct(cold[3], 50):.2f} cold (target <= 1.0)")
        print(f"shell p50 / fork+exec p50: {pct(lean, 50) / pct(spawn, 50):.2f} with the lean client, "
              f"{pct(warm, 50) / pct(spawn, 50):.2f} with http.client (target <= 3.0); "
              f"bash alone on the host: {pct(bash, 50) / pct(spawn, 50):.2f}")

        if args.idle <= 0:
            return
        before = mem_available_kib()
        ids = []
        t0 = time.time()
        for _ in range(args.idle):
            ids.append(node.sandbox(key=key))
        took = time.time() - t0
        time.sleep(2)
        after = mem_available_kib()
        accounted = 0
        for sid in ids:
            try:
                with open(f"/sys/fs/cgroup/memory/{node.cgroup_parent}/{sid}/memory.usage_in_bytes") as f:
                    accounted += int(f.read())
            except OSError:
                pass
        per = (before - after) / len(ids) / 1024
        print(f"\n{len(ids)} idle sandboxes created in {took:.1f} s")
        print(f"host memory per idle sandbox: {per:.2f} MiB (MemAvailable drop / count; target <= 2 MiB)")
        print(f"accounted to their cgroups:   {accounted / len(ids) / 2**20:.2f} MiB each")
        for sid in ids:
            node.request("DELETE", f"/v1/sandboxes/{sid}", key=key)
    finally:
        node.destroy()


if __name__ == "__main__":
    main()
