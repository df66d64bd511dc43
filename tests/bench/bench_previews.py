"""Benchmark: previews through nginx, against references measured in the same run.

  python3 tests/bench/bench_previews.py [--rounds 50] [--seconds 2] [--pairs 5] [--many 500]

1. From the expose call to the first proxied byte: POST /v1/sandboxes/:id/expose, then a
   GET on a new HTTPS connection to the preview host until the sandbox's answer arrives.
   p50 and p99 over --rounds exposes (each port closed again first). Also the time nginx
   takes to load the snippet (the master's reload log). Target: p50 under 100 ms.
2. Throughput of a 1 MiB response over keep-alive, through the preview (plain HTTP on the
   node's port, so that TLS is not what is measured) against the same server reached
   directly on the sandbox's address: wrk, one connection, --pairs alternating runs of
   --seconds each, medians compared.
   Target: >= 0.7 of direct.
   Also measured in the same turns, as the ceiling of any nginx in between: a bare nginx
   (a config of a few lines started by this script: one upstream, keep-alive, the same
   64 KiB unbuffered proxying, nothing of Warren's) in front of the same server.
3. What a reload costs with many ports exposed: the p50 reload with --many ports of one
   sandbox exposed, against the p50 of part 1 (one port) in the same run.
4. Cold create with networking (warm_pool_size = 0), p50 over --rounds, for comparison with
   the runtime's figure before sandboxes had a network.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from harness import Node, wait_until  # noqa: E402

SERVER = r'''
import http.server, socketserver, sys
BIG = b"x" * (1 << 20)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = BIG if self.path == "/big" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    def server_bind(self):  # no reverse lookup of the address
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "sandbox", self.server_address[1]
S(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
'''


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def get_once(node, host, token=None):
    """One GET / on a new TLS connection; True once the sandbox answered."""
    ctx = ssl.create_default_context(cafile=os.path.join(node.state, "tls", "preview.crt"))
    with socket.create_connection(("127.0.0.1", node.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")


def expose_to_first_byte(node, sid, port, rounds):
    host = f"{port}-{sid}.warren.localhost"
    out = []
    for _ in range(rounds):
        node.request("DELETE", f"/v1/sandboxes/{sid}/expose/{port}")
        t0 = time.perf_counter()
        r = node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": port, "public": True})
        assert r.status == 200, r
        while not get_once(node, host):
            pass
        out.append((time.perf_counter() - t0) * 1000)
    return out


def wrk(url, seconds, host=None):
    cmd = ["wrk", "-t1", "-c1", f"-d{seconds}s", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, f"{' '.join(cmd)} failed ({run.returncode}): {run.stdout}{run.stderr}"
    out = run.stdout
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]
    return float(m.group(1)) * scale / (1 << 20)


BARE_NGINX = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    upstream sandbox {{ server {address}:8000; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sandbox;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
        }}
    }}
}}
"""


def bare_nginx(address):
    """A bare nginx in front of the sandbox's server: (process, port)."""
    work = tempfile.mkdtemp(prefix="warren-bench-nginx-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(BARE_NGINX.format(dir=work, address=address, port=port))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", work], stderr=open(os.path.join(work, "error.log"), "a"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, work
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("the bare nginx did not start: " + open(os.path.join(work, "error.log")).read()[-500:])


def reload_times(node, since=0):
    log = open(os.path.join(node.state, "logs", "warrend.log")).read()[since:]
    return [int(m) for m in re.findall(r'"nginx reloaded for previews".*?"ms":(\d+)', log)]


def reloads_with_many_ports(node, sid, many, rounds):
    """p50 reload once `many` ports are exposed: each round closes and exposes one port, and
    waits for its reload to be logged."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": p}),
                      range(20000, 20000 + many)))
    time.sleep(3)
    since = len(open(os.path.join(node.state, "logs", "warrend.log")).read())
    for _ in range(rounds):
        node.request("DELETE", f"/v1/sandboxes/{sid}/expose/20000")
        node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": 20000})
        time.sleep(0.5)
    for p in range(20000, 20000 + many):
        node.request("DELETE", f"/v1/sandboxes/{sid}/expose/{p}")
    return reload_times(node, since)


def cold_creates(rounds):
    node = Node(workers=2, threads=32, warm_pool_size=0)
    try:
        node.start()
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = node.request("POST", "/v1/sandboxes", {})
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status == 201, r
            node.request("DELETE", f"/v1/sandboxes/{r.json['id']}")
        return out
    finally:
        node.destroy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--many", type=int, default=500)
    args = ap.parse_args()
    node = Node(workers=2, threads=64)
    try:
        node.start()
        # A long run (--many on a busy machine) outlasts the default lifetime of 5 minutes.
        sid = node.request("POST", "/v1/sandboxes", {"timeout_ms": 3600 * 1000}).json["id"]
        node.shell(sid, f"cat > /tmp/server.py <<'EOF'\n{SERVER}\nEOF")
        node.request("POST", f"/v1/sandboxes/{sid}/commands", {"cmd": "python3 /tmp/server.py 8000"})
        address = node.request("GET", f"/v1/sandboxes/{sid}").json["network"]["address"]
        assert wait_until(lambda: node.shell(sid, "curl -s localhost:8000/").json["stdout"] == "ok", timeout=20)

        times = expose_to_first_byte(node, sid, 8000, args.rounds)
        reloads = reload_times(node)
        print(f"expose -> first proxied byte: p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms "
              f"({args.rounds} exposes; target p50 < 100 ms)")
        print(f"  nginx reload that brings the snippet: p50 {pct(reloads, 50)} ms, p99 {pct(reloads, 99)} ms "
              f"({len(reloads)} reloads; until then the fallback route serves)")

        many = reloads_with_many_ports(node, sid, args.many, 10)
        print(f"  with {args.many} ports exposed: reload p50 {pct(many, 50)} ms, ratio to one port "
              f"{pct(many, 50) / pct(reloads, 50):.2f} ({len(many)} reloads)")

        node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": 8000, "public": True})
        time.sleep(1)
        host = f"8000-{sid}.warren.localhost"
        # Alternating short runs, medians of each: this machine's speed drifts (a shared
        # host), and both paths should see the same drift.
        direct, preview, bare = [], [], []
        proc, bare_port, bare_dir = bare_nginx(address)
        try:
            for _ in range(args.pairs):
                direct.append(wrk(f"http://{address}:8000/big", args.seconds))
                preview.append(wrk(f"http://127.0.0.1:{node.http_port}/big", args.seconds, host=host))
                bare.append(wrk(f"http://127.0.0.1:{bare_port}/big", args.seconds))
        finally:
            proc.terminate()  # the master stops its worker (a killed master would leave it)
            proc.wait()
            shutil.rmtree(bare_dir, ignore_errors=True)
        d, p, b = pct(direct, 50), pct(preview, 50), pct(bare, 50)
        print(f"1 MiB responses, keep-alive, one connection, median of {args.pairs} alternating runs: "
              f"preview {p:.0f} MiB/s, direct {d:.0f} MiB/s, ratio {p / d:.2f} (target >= 0.7)")
        print(f"  a bare nginx in front of the same server: {b:.0f} MiB/s, ratio {b / d:.2f} to direct; "
              f"the preview is {p / b:.2f} of it")
    finally:
        node.destroy()
    creates = cold_creates(args.rounds)
    print(f"cold create with networking: p50 {pct(creates, 50):.2f} ms, p99 {pct(creates, 99):.2f} ms")


if __name__ == "__main__":
    main()
