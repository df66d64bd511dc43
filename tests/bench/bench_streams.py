"""Benchmark: an ordinary API call while a node holds many open streams.

  python3 tests/bench/bench_streams.py [--streams 1000] [--calls 300]

Opens `streams` run/stream requests through nginx (fresh bash runs that sleep, spread over
a few sandboxes, kill_on_disconnect so they end when the benchmark lets go), waits until
every one has said "start", then times GET /v1/sandboxes/:id `calls` times, and compares
its p50 and p99 with the same call on the same node with no stream open. The node runs
with twelve workers of 256 threads. Target: the p99 during stays within the usual latency.
"""
import argparse
import asyncio
import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def timed_gets(node, sid, calls):
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    hdrs = {"Authorization": "Bearer " + node.admin_key}
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        conn.request("GET", f"/v1/sandboxes/{sid}", headers=hdrs)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


async def open_stream(node, sid, started):
    reader, writer = await asyncio.open_connection("127.0.0.1", node.http_port)
    body = json.dumps({"code": "sleep 60", "language": "bash", "fresh": True, "kill_on_disconnect": True,
                       "timeout_ms": 120000}).encode()
    writer.write((f"POST /v1/sandboxes/{sid}/run/stream HTTP/1.1\r\nHost: bench\r\n"
                  f"Authorization: Bearer {node.admin_key}\r\nContent-Type: application/json\r\n"
                  f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    await writer.drain()
    status = (await reader.readline()).decode()
    if " 200 " not in status:
        rest = await reader.read(2000)
        raise RuntimeError(f"stream refused: {status.strip()} {rest[-300:]!r}")
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("stream ended before it started")
        if line.startswith(b"event: start"):
            started.append(1)
            return writer


async def hold_streams(node, sids, n):
    started = []
    per = [sids[i % len(sids)] for i in range(n)]
    writers = []
    # Opened in waves, as clients arrive: not all in one instant.
    for i in range(0, n, 100):
        writers += await asyncio.gather(*(open_stream(node, sid, started) for sid in per[i:i + 100]))
    return writers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    # Twelve workers of 256 threads: three quarters of each worker's threads may run sandbox
    # calls, connections do not spread evenly over the workers, and each worker must stay
    # below libfcgi's 1,024 descriptors.
    node = Node(workers=12, threads=256, max_sandboxes_per_node=20).start()
    loop = asyncio.new_event_loop()
    try:
        # Each stream is a shepherd, bash and sleep: 250 streams keep a sandbox under its pids limit.
        sids = [node.sandbox(memory_mb=2048) for _ in range((args.streams + 249) // 250)]
        probe = node.sandbox()
        before = timed_gets(node, probe, args.calls)
        t0 = time.time()
        writers = loop.run_until_complete(hold_streams(node, sids, args.streams))
        opened = time.time() - t0
        during = timed_gets(node, probe, args.calls)
        for w in writers:
            w.close()
        print(f"\nWarren streams benchmark: {os.cpu_count()} cores, {args.streams} open streams "
              f"(opened in {opened:.1f} s), {args.calls} calls each way")
        print(f"{'GET /v1/sandboxes/:id':<40}{'p50 ms':>10}{'p99 ms':>10}")
        print(f"{'  with no stream open':<40}{pct(before, 50):>10.2f}{pct(before, 99):>10.2f}")
        print(f"{'  with the streams open':<40}{pct(during, 50):>10.2f}{pct(during, 99):>10.2f}")
        print(f"\np99 during / p99 before: {pct(during, 99) / pct(before, 99):.2f}")
        time.sleep(1)
        for sid in sids + [probe]:
            node.request("DELETE", f"/v1/sandboxes/{sid}")
    finally:
        loop.close()
        node.destroy()


if __name__ == "__main__":
    main()
