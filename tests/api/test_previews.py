"""Previews through the real nginx: servers inside a sandbox (HTTP, server-sent events and a
WebSocket echo) exposed as https://<port>-<id>.<domain>, fetched with curl --resolve and
checked against the node's wildcard certificate; private and public previews; a burst of
exposes with requests running; what is left after deletes."""
import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time

from harness import Node, delete_all_and_expect_nothing_left, expect, expect_error, main, test, wait_until

# Runs in the sandbox: an HTTP server (/, /big: 1 MiB, /sse: three events a second apart,
# /echo: the request's headers, /accel: an answer that tries to steer nginx) and a WebSocket
# echo server, on the ports given.
SERVER = r'''
import base64, hashlib, socket, socketserver, sys, threading, time
http_port, ws_port = int(sys.argv[1]), int(sys.argv[2])
BIG = b"x" * (1 << 20)
class Http(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode()
        headers = []
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            headers.append(h.decode().strip())
        path = line.split()[1] if len(line.split()) > 1 else "/"
        if path == "/sse":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
            for i in range(3):
                self.wfile.write(b"data: tick %d\n\n" % i)
                self.wfile.flush()
                time.sleep(1)
            return
        if path == "/accel":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /.warren/route\r\n"
                             b"Content-Length: 18\r\nConnection: close\r\n\r\nthe sandbox's body")
            return
        body = BIG if path == "/big" else ("\n".join(headers) if path == "/echo" else "hello from the sandbox").encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
class Ws(socketserver.StreamRequestHandler):
    def handle(self):
        key = None
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            if h.lower().startswith(b"sec-websocket-key:"):
                key = h.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            n = head[1] & 127
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            self.wfile.write(bytes([0x81, len(data)]) + data)
            self.wfile.flush()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
threading.Thread(target=socketserver.ThreadingTCPServer(("0.0.0.0", ws_port), Ws).serve_forever, daemon=True).start()
socketserver.ThreadingTCPServer(("0.0.0.0", http_port), Http).serve_forever()
'''

HTTP_PORT, WS_PORT = 8000, 8765


def host_of(sid, port, node):
    return f"{port}-{sid}.warren.localhost"


def curl(node, sid, port, path="/", headers=(), cookie_jar=None, extra=()):
    """(status, body) of a GET through nginx over HTTPS, the certificate checked against the
    node's own preview certificate."""
    host = host_of(sid, port, node)
    cmd = ["curl", "-sS", "--max-time", "20", "--resolve", f"{host}:{node.https_port}:127.0.0.1", "--cacert",
           os.path.join(node.state, "tls", "preview.crt"), "-w", "\n%{http_code}", *extra]
    for h in headers:
        cmd += ["-H", h]
    if cookie_jar:
        cmd += ["-b", cookie_jar, "-c", cookie_jar]
    out = subprocess.run(cmd + [f"https://{host}:{node.https_port}{path}"], capture_output=True, text=True)
    body, _, code = out.stdout.rpartition("\n")
    if not int(code or 0):  # no answer at all: say what curl saw
        return 0, f"curl exit {out.returncode}: {out.stderr.strip()}"
    return int(code), body


def tls_socket(node, host):
    ctx = ssl.create_default_context(cafile=os.path.join(node.state, "tls", "preview.crt"))
    raw = socket.create_connection(("127.0.0.1", node.https_port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname=host)


def serving_sandbox(node):
    r = node.request("POST", "/v1/sandboxes", {})
    expect(r.status == 201, r)
    sid = r.json["id"]
    node.shell(sid, f"cat > /tmp/server.py <<'EOF'\n{SERVER}\nEOF")
    r = node.request("POST", f"/v1/sandboxes/{sid}/commands",
                     {"cmd": f"python3 /tmp/server.py {HTTP_PORT} {WS_PORT}"})
    expect(r.status == 201, r)
    expect(wait_until(lambda: node.shell(sid, f"curl -s -o /dev/null -w %{{http_code}} localhost:{HTTP_PORT}/")
                      .json["stdout"] == "200", timeout=20), "the sandbox's server did not start")
    return sid


def expose(node, sid, port, public=None):
    body = {"port": port} if public is None else {"port": port, "public": public}
    r = node.request("POST", f"/v1/sandboxes/{sid}/expose", body)
    expect(r.status == 200, r)
    return r.json


@test
def private_preview_needs_its_token(ctx):
    node, sid = ctx["node"], ctx["sid"]
    e = expose(node, sid, HTTP_PORT)
    expect(e["public"] is False and e["token"] and e["auth_url"], e)
    expect(e["url"] == f"https://{host_of(sid, HTTP_PORT, node)}:{node.https_port}/", e)
    status, body = curl(node, sid, HTTP_PORT)
    expect(status == 401 and "private" in body, (status, body))
    status, body = curl(node, sid, HTTP_PORT, headers=["X-Warren-Preview-Token: wrong"])
    expect(status == 401, (status, body))
    status, body = curl(node, sid, HTTP_PORT, headers=[f"X-Warren-Preview-Token: {e['token']}"])
    expect(status == 200 and body == "hello from the sandbox", (status, body))
    # The token is nginx's business: the sandbox's server does not see it.
    status, body = curl(node, sid, HTTP_PORT, "/echo", headers=[f"X-Warren-Preview-Token: {e['token']}"])
    expect(status == 200 and e["token"] not in body and "X-Forwarded-Proto: https" in body, body)
    # The one-time link sets a cookie for this host; a second use of it is refused.
    jar = os.path.join(node.state, "cookies.txt")
    status, _ = curl(node, sid, HTTP_PORT, e["auth_url"].split(str(node.https_port), 1)[1], cookie_jar=jar)
    expect(status == 302, status)
    status, body = curl(node, sid, HTTP_PORT, cookie_jar=jar)
    expect(status == 200 and body == "hello from the sandbox", (status, body))
    status, body = curl(node, sid, HTTP_PORT, e["auth_url"].split(str(node.https_port), 1)[1])
    expect(status == 404 and "used already" in body, (status, body))
    # Exposing again makes a new token; the old one stops working.
    e2 = expose(node, sid, HTTP_PORT)
    expect(curl(node, sid, HTTP_PORT, headers=[f"X-Warren-Preview-Token: {e['token']}"])[0] == 401)
    expect(curl(node, sid, HTTP_PORT, headers=[f"X-Warren-Preview-Token: {e2['token']}"])[0] == 200)
    ctx["token"] = e2["token"]


@test
def public_preview_and_plain_http(ctx):
    node, sid = ctx["node"], ctx["sid"]
    e = expose(node, sid, 8001, public=True)
    expect("token" not in e, e)
    node.request("POST", f"/v1/sandboxes/{sid}/commands", {"cmd": "cd /tmp && python3 -m http.server 8001"})
    expect(wait_until(lambda: curl(node, sid, 8001)[0] == 200, timeout=20), curl(node, sid, 8001))
    host = host_of(sid, 8001, node)
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                          f"{host}:{node.http_port}:127.0.0.1", f"http://{host}:{node.http_port}/"],
                         capture_output=True, text=True).stdout
    expect(out == "200", out)
    ports = node.request("GET", f"/v1/sandboxes/{sid}/expose").json["ports"]
    expect(sorted(p["port"] for p in ports) == [HTTP_PORT, 8001], ports)
    expect(all("token_md5" not in p for p in ports), ports)


@test
def a_port_nothing_listens_on_is_a_clear_502(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expose(node, sid, 8999, public=True)
    t0 = time.monotonic()
    status, body = curl(node, sid, 8999)
    expect(status == 502 and "nothing answers on" in body, (status, body))
    expect(time.monotonic() - t0 < 5, "a refused port must not hang")
    status, body = curl(node, sid, 8998)
    expect(status == 404 and "nothing is exposed" in body, (status, body))


@test
def a_sandbox_cannot_steer_nginx(ctx):
    """X-Accel-Redirect from a sandbox's server would send the request on to the preview
    server's internal locations; nginx passes the sandbox's own answer instead."""
    node, sid = ctx["node"], ctx["sid"]
    status, body = curl(node, sid, HTTP_PORT, "/accel", headers=[f"X-Warren-Preview-Token: {ctx['token']}"])
    expect((status, body) == (200, "the sandbox's body"), (status, body))


@test
def server_sent_events_pass_as_they_come(ctx):
    node, sid = ctx["node"], ctx["sid"]
    host = host_of(sid, HTTP_PORT, node)
    s = tls_socket(node, host)
    s.sendall(f"GET /sse HTTP/1.1\r\nHost: {host}\r\nX-Warren-Preview-Token: {ctx['token']}\r\n\r\n".encode())
    t0 = time.monotonic()
    got = b""
    while b"tick 0" not in got:
        chunk = s.recv(4096)
        expect(chunk, f"stream ended early: {got!r}")
        got += chunk
    first = time.monotonic() - t0
    while b"tick 2" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    expect(first < 0.9, f"the first event must arrive before the server's next one, took {first:.2f}s")
    expect(b"tick 2" in got, got)


@test
def websockets_pass_through(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expose(node, sid, WS_PORT, public=True)
    host = host_of(sid, WS_PORT, node)
    s = tls_socket(node, host)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        byte = s.recv(1)
        expect(byte, f"the connection closed during the handshake: {head!r}")
        head += byte
    expect(head.startswith(b"HTTP/1.1 101"), head)
    for msg in (b"hello", b"second message"):
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
        frame = s.recv(2)
        expect(len(frame) == 2, f"the connection closed: {frame!r}")
        data = b""
        while len(data) < frame[1]:
            chunk = s.recv(frame[1] - len(data))
            expect(chunk, f"the connection closed mid-frame: {data!r}")
            data += chunk
        expect(data == msg, data)
    s.close()


class FetchingAllAlong:
    """Clients fetching a live preview in a loop, a new connection each time, for as long as
    the with-block runs; `failed` lists what did not come back 200."""

    def __init__(self, node, sid, port, clients=3):
        self.stop = threading.Event()
        self.results = []
        self.threads = [threading.Thread(target=self.loop, args=(node, sid, port)) for _ in range(clients)]

    def loop(self, node, sid, port):
        while not self.stop.is_set():
            try:
                self.results.append(curl(node, sid, port))
            except Exception as e:  # a client that broke counts as a failed request
                self.results.append((0, f"the client failed: {e!r}"))

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    @property
    def failed(self):
        return [r for r in self.results if r[0] != 200]


def reload_count(node):
    return open(os.path.join(node.state, "logs", "warrend.log")).read().count("nginx reloaded for previews")


@test
def a_burst_of_exposes_reloads_a_few_times_and_fails_no_request(ctx):
    node, sid = ctx["node"], ctx["sid"]
    reloads_before = reload_count(node)
    errors = []

    def one(port):
        r = node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": port, "public": True})
        if r.status != 200:
            errors.append(r)

    with FetchingAllAlong(node, sid, 8001) as fetching:
        threads = [threading.Thread(target=one, args=(p,)) for p in range(9000, 9100)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        burst = time.monotonic() - t0
        expect(not errors, errors[:3])
        # Every exposed host routes (502: nothing listens there), before and after the reloads.
        routed = [curl(node, sid, p) for p in (9000, 9050, 9099)]
        expect(all(r[0] == 502 for r in routed), routed)
        time.sleep(1.5)
    reloads = reload_count(node) - reloads_before
    print(f"    100 exposes in {burst:.2f}s: {reloads} nginx reloads; {len(fetching.results)} requests during, "
          f"{len(fetching.failed)} failed")
    expect(fetching.results and not fetching.failed,
           f"{len(fetching.failed)} of {len(fetching.results)} requests failed during reloads: {fetching.failed[:3]}")
    expect(reloads <= 20, f"{reloads} reloads for 100 exposes")
    files = [f for f in os.listdir(os.path.join(node.state, "nginx", "generated")) if f.startswith(sid)]
    expect(len(files) == 208, f"{len(files)} generated files for 104 exposed ports (an upstream and a map line each)")


@test
def requests_in_flight_survive_many_reloads(ctx):
    # Closing a port waits for its reload, so each round below is one reload at least: enough
    # of them to catch a server that drops a connection it accepted just before one.
    node, sid = ctx["node"], ctx["sid"]
    reloads_before = reload_count(node)
    with FetchingAllAlong(node, sid, 8001) as fetching:
        for _ in range(25):
            expect(node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": 9500}).status == 200)
            expect(node.request("DELETE", f"/v1/sandboxes/{sid}/expose/9500").status == 200)
    reloads = reload_count(node) - reloads_before
    print(f"    {reloads} nginx reloads; {len(fetching.results)} requests during, {len(fetching.failed)} failed")
    expect(reloads >= 25, f"only {reloads} reloads for 25 closed ports")
    expect(fetching.results and not fetching.failed,
           f"{len(fetching.failed)} of {len(fetching.results)} requests failed during reloads: {fetching.failed[:3]}")


@test
def closing_a_port_and_bad_input(ctx):
    node, sid = ctx["node"], ctx["sid"]
    r = node.request("DELETE", f"/v1/sandboxes/{sid}/expose/9000")
    expect(r.status == 200, r)
    status, _ = curl(node, sid, 9000)
    expect(status == 404, status)
    expect_error(node.request("DELETE", f"/v1/sandboxes/{sid}/expose/9000"), 404, "not exposed")
    expect_error(node.request("DELETE", f"/v1/sandboxes/{sid}/expose/http"), 400)
    for body in ({}, {"port": 0}, {"port": 65536}, {"port": "80"}, {"port": 80, "public": "yes"},
                 {"port": 80, "extra": 1}):
        expect_error(node.request("POST", f"/v1/sandboxes/{sid}/expose", body), 400)
    expect_error(node.request("POST", "/v1/sandboxes/nosuch/expose", {"port": 80}), 404)
    other = node.create_key("other", scopes=["sandboxes"])
    r = node.request("POST", f"/v1/sandboxes/{sid}/expose", {"port": 80}, key=other["key"])
    expect_error(r, 404)
    # The internal route is not the API's.
    expect_error(node.request("GET", "/v1/previews/route"), 404)


@test
def deleting_the_sandbox_removes_its_previews(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expect(node.request("DELETE", f"/v1/sandboxes/{sid}").status == 200)
    gen = os.path.join(node.state, "nginx", "generated")
    expect(not [f for f in os.listdir(gen) if f.startswith(sid)], os.listdir(gen))
    last = []
    expect(wait_until(lambda: last.append(curl(node, sid, HTTP_PORT,
                                               headers=[f"X-Warren-Preview-Token: {ctx['token']}"])) or
                      last[-1][0] == 404, timeout=5), f"the preview outlived its sandbox: {last[-1]}")
    delete_all_and_expect_nothing_left(node)


def setup():
    node = Node(workers=2, threads=64).start()
    return {"node": node, "sid": serving_sandbox(node)}


main(setup, lambda ctx: ctx["node"].destroy())
