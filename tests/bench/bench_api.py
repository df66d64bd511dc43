"""Benchmark: authenticated API requests through nginx -> FastCGI -> warrend -> Redis,
against the same nginx serving a static file of the same size, measured in the same run
with wrk. Prints requests/s, p50 and p99 for both and the ratios.

  python3 tests/bench/bench_api.py [--seconds 10] [--connections 32]

Run it from a build (WARREN_BUILD_DIR, default ./build). Targets (issue 2): API throughput
at least 1/3 of static, p99 under 5 ms at moderate load (4 connections)."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node, free_port  # noqa: E402

STATIC_CONF = """
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log {dir}/access.log combined buffer=64k flush=1s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {dir}/www; default_type application/json; }}
    }}
}}
"""


def wrk(url, seconds, connections, threads, key=None):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"rps": rps, "p50": pct(50), "p99": pct(99), "errors": int(non2xx.group(1)) if non2xx else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    cores = os.cpu_count()

    node = Node(workers=0, threads=64).start()  # workers = 0: one per core, the default
    static_dir = tempfile.mkdtemp(prefix="warren-bench-static-")
    try:
        key = node.create_key("bench", rate=1000000000, burst=1000000000)["key"]
        sample = node.request("GET", "/v1/usage", key=key).body
        os.chmod(static_dir, 0o755)  # nginx's workers (nobody) must read it
        os.makedirs(os.path.join(static_dir, "www"))
        with open(os.path.join(static_dir, "www", "usage.json"), "w") as f:
            f.write(sample)  # the same bytes as the API's answer
        port = free_port()
        with open(os.path.join(static_dir, "nginx.conf"), "w") as f:
            f.write(STATIC_CONF.format(workers=2, dir=static_dir, port=port))
        subprocess.run(["nginx", "-c", os.path.join(static_dir, "nginx.conf"), "-p", static_dir], check=True)

        api_url = f"http://127.0.0.1:{node.http_port}/v1/usage"
        static_url = f"http://127.0.0.1:{port}/usage.json"
        wrk(api_url, 2, 8, 2, key)  # warm both up
        wrk(static_url, 2, 8, 2)
        if wrk(static_url, 1, 1, 1)["errors"]:
            raise SystemExit("the static reference answers errors; its numbers would mean nothing")
        rows = {
            "static, saturated": wrk(static_url, args.seconds, args.connections, 2),
            "api, saturated": wrk(api_url, args.seconds, args.connections, 2, key),
            "static, moderate (4 conns)": wrk(static_url, args.seconds, 4, 1),
            "api, moderate (4 conns)": wrk(api_url, args.seconds, 4, 1, key),
        }
        print(f"\nWarren API benchmark: {cores} cores, wrk {args.seconds}s per run, {len(sample)}-byte answers")
        print(f"{'run':<30}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
        for name, r in rows.items():
            print(f"{name:<30}{r['rps']:>12.0f}{r['p50']:>10.3f}{r['p99']:>10.3f}{r['errors']:>10}")
        sat = rows["api, saturated"]["rps"] / rows["static, saturated"]["rps"]
        mod = rows["api, moderate (4 conns)"]["rps"] / rows["static, moderate (4 conns)"]["rps"]
        print(f"\nratio api/static throughput: saturated {sat:.2f} (target >= 0.33), moderate {mod:.2f}")
        print(f"api p99 at moderate load: {rows['api, moderate (4 conns)']['p99']:.3f} ms (target < 5 ms)")
    finally:
        subprocess.run(["nginx", "-c", os.path.join(static_dir, "nginx.conf"), "-p", static_dir, "-s", "quit"],
                       capture_output=True)
        node.destroy()


if __name__ == "__main__":
    main()
