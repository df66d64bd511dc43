"""Benchmark: files through nginx, against references measured in the same run.

  python3 tests/bench/bench_files.py [--mib 1024] [--rounds 200] [--rounds-big 3]

1. Upload and download of a --mib MiB file through nginx (PUT/GET /fs/raw, keep-alive),
   each against `cp` of the same file to a new file in the same directory of the host's
   disk. Target: >= 0.5 of cp. Also the growth of the workers' peak RSS across both
   (target: under 16 MiB). Both go the way a client's do: nginx asks warrend, then moves
   the bytes to and from the sandbox's agent itself (the answer says X-Warren-Transfer:
   direct; the bench checks it). --rounds-big runs each transfer that many times, in turns
   with cp, and compares medians.
2. Small files: fs/write then fs/read of 100 bytes, p50 and p99 over --rounds each.
   Target: p50 under 2 ms.
"""
import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def peak_rss(node):
    out = {}
    for pid in node.worker_pids():
        with open(f"/proc/{pid}/status") as f:
            out[pid] = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--rounds-big", type=int, default=3)
    args = ap.parse_args()
    size = args.mib << 20
    work = tempfile.mkdtemp(prefix="warren-bench-files-")
    src = os.path.join(work, "src.bin")
    with open(src, "wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1 << 20))
    node = Node(workers=2, threads=32)
    try:
        node.start()
        sid = node.request("POST", "/v1/sandboxes", {"disk_mb": args.mib * 2 + 512,
                                                     "memory_mb": args.mib * 2 + 512}).json["id"]
        hdrs = {"Authorization": "Bearer " + node.admin_key}
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=600)
        before = peak_rss(node)

        # curl moves the bytes, so the client's own cost stays small (http.client sends a
        # file in 8 KiB writes).
        base = f"http://127.0.0.1:{node.http_port}/v1/sandboxes/{sid}/fs/raw?path=/home/user/big.bin"
        auth = ["-H", "Authorization: Bearer " + node.admin_key]

        def timed(cmd):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            took = time.perf_counter() - t0
            assert out.returncode == 0, out
            return took, out.stdout

        ups, downs, cps = [], [], []
        for i in range(args.rounds_big):
            took, out = timed(["curl", "-sf", "-D", "-", "-X", "PUT", "-T", src, *auth, base])
            assert "x-warren-transfer: direct" in out.lower() and f'"size":{size}' in out, out
            ups.append(took)
            # Downloaded to /dev/null (a file on the host's disk would time its write-back
            # too); the sandbox checks its copy against the source's hash instead.
            took, out = timed(["curl", "-sf", *auth, "-o", "/dev/null", "-w", "%{size_download} %header{x-warren-transfer}", base])
            assert out == f"{size} direct", out
            downs.append(took)
            dst = os.path.join(work, f"copy{i}.bin")
            took, _ = timed(["cp", src, dst])
            cps.append(took)
            os.unlink(dst)
        inside = node.shell(sid, "sha256sum /home/user/big.bin", timeout_ms=120000).json["stdout"].split()[0]
        after = peak_rss(node)
        with open(src, "rb") as f:
            want = hashlib.sha256()
            while chunk := f.read(1 << 20):
                want.update(chunk)
        assert inside == want.hexdigest(), "the uploaded file differs"
        up, down, cp = pct(ups, 50), pct(downs, 50), pct(cps, 50)
        mib = size / (1 << 20)
        print(f"{args.mib} MiB, medians of {args.rounds_big} in turns: upload {mib / up:.0f} MiB/s, "
              f"download {mib / down:.0f} MiB/s, cp {mib / cp:.0f} MiB/s -> upload {cp / up:.2f}x, "
              f"download {cp / down:.2f}x of cp (target >= 0.5)")
        grew = max(after[p] - before.get(p, after[p]) for p in after)
        print(f"workers' peak RSS grew by {grew / 1024:.1f} MiB across both (target < 16 MiB)")

        body = json.dumps({"path": "/home/user/small.txt", "content": "x" * 100})
        writes, reads = [], []
        for i in range(args.rounds + 10):
            t0 = time.perf_counter()
            conn.request("POST", f"/v1/sandboxes/{sid}/fs/write", body=body, headers=hdrs)
            r = conn.getresponse()
            r.read()
            t1 = time.perf_counter()
            conn.request("POST", f"/v1/sandboxes/{sid}/fs/read", body=json.dumps({"path": "/home/user/small.txt"}),
                         headers=hdrs)
            r2 = conn.getresponse()
            r2.read()
            t2 = time.perf_counter()
            assert r.status == 200 and r2.status == 200
            if i >= 10:
                writes.append((t1 - t0) * 1000)
                reads.append((t2 - t1) * 1000)
        print(f"small file write: p50 {pct(writes, 50):.2f} ms, p99 {pct(writes, 99):.2f} ms; "
              f"read: p50 {pct(reads, 50):.2f} ms, p99 {pct(reads, 99):.2f} ms (target p50 < 2 ms)")
    finally:
        node.destroy()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
