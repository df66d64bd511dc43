"""Benchmark: warm stateful contexts and streamed output through nginx, against references
measured in the same run on the same machine.

  python3 tests/bench/bench_contexts.py [--rounds 200]

1. `print(1)` in a warm python context (POST /run, through nginx, answered when done): p50
   against `python3 -c 'print(1)'` started fresh on the host. Target: >= 10x faster.
2. The same for javascript: `console.log(1)` in a warm context against `node -e`.
3. Time to the first streamed byte of a program that prints and then sleeps (run/stream,
   one-shot bash is not used: the default python context prints, then sleeps 50 ms): p50
   from sending the request to reading the stdout event. Target: under 5 ms.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def fresh(cmd, rounds):
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def warm(node, sid, code, language, rounds):
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    hdrs = {"Authorization": "Bearer " + node.admin_key, "Content-Type": "application/json"}
    body = json.dumps({"code": code, "language": language}).encode()
    out = []
    for i in range(rounds + 5):
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/sandboxes/{sid}/run", body=body, headers=hdrs)
        r = conn.getresponse()
        data = json.loads(r.read())
        t = (time.perf_counter() - t0) * 1000
        assert r.status == 200 and data["logs"]["stdout"] == ["1\n"], data
        if i >= 5:  # the first runs start the context
            out.append(t)
    conn.close()
    return out


def first_byte(node, sid, rounds):
    hdrs = {"Authorization": "Bearer " + node.admin_key, "Content-Type": "application/json",
            "Accept": "text/event-stream"}
    body = json.dumps({"code": "import time\nprint('x', flush=True)\ntime.sleep(0.05)"}).encode()
    out = []
    for _ in range(rounds):
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/sandboxes/{sid}/run/stream", body=body, headers=hdrs)
        r = conn.getresponse()
        got = None
        while True:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"event: stdout") and got is None:
                got = (time.perf_counter() - t0) * 1000
        assert got is not None
        out.append(got)
        conn.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    node = Node(workers=2, threads=32).start()
    try:
        sid = node.sandbox()
        py_warm = warm(node, sid, "print(1)", "python", args.rounds)
        js_warm = warm(node, sid, "console.log(1)", "javascript", args.rounds)
        ttfb = first_byte(node, sid, max(20, args.rounds // 4))
        node.request("DELETE", f"/v1/sandboxes/{sid}")
    finally:
        node.destroy()
    py_fresh = fresh(["/usr/bin/python3", "-c", "print(1)"], max(20, args.rounds // 4))
    js_fresh = fresh(["/usr/bin/node", "-e", "console.log(1)"], max(20, args.rounds // 4))

    print(f"\nWarren contexts benchmark: {os.cpu_count()} cores, {args.rounds} rounds")
    print(f"{'step':<52}{'p50 ms':>10}{'p99 ms':>10}")
    for name, v in (("print(1), warm python context (API, nginx)", py_warm),
                    ("python3 -c 'print(1)', fresh process on the host", py_fresh),
                    ("console.log(1), warm javascript context (API)", js_warm),
                    ("node -e 'console.log(1)', fresh process on the host", js_fresh),
                    ("first streamed byte (run/stream, print then sleep)", ttfb)):
        print(f"{name:<52}{pct(v, 50):>10.2f}{pct(v, 99):>10.2f}")
    print(f"\npython: fresh p50 / warm p50 = {pct(py_fresh, 50) / pct(py_warm, 50):.1f}x (target >= 10x)")
    print(f"javascript: fresh p50 / warm p50 = {pct(js_fresh, 50) / pct(js_warm, 50):.1f}x (target >= 10x)")
    print(f"first streamed byte p50: {pct(ttfb, 50):.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
