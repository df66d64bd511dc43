"""Files through the real nginx: text and binary round trips, the tree operations, raw
transfers of a 1 GiB file (hash compared, worker memory flat), and paths that try to reach
the host or block the agent."""
import base64
import hashlib
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.parse

from harness import (SANITIZED, Node, delete_all_and_expect_nothing_left, expect, expect_error, main, test,
                     wait_until)


def fs(node, sid, action, **body):
    return node.request("POST", f"/v1/sandboxes/{sid}/fs/{action}", body)


def ok(r, status=200):
    expect(r.status == status, r)
    return r.json


@test
def text_and_bytes_round_trip(ctx):
    node, sid = ctx["node"], ctx["sid"]
    text = "première ligne\nzweite Zeile ✓\n" * 100
    e = ok(fs(node, sid, "write", path="/home/user/notes/a.txt", content=text))
    expect(e["type"] == "file" and e["size"] == len(text.encode()) and e["owner"] == "user", e)
    got = ok(fs(node, sid, "read", path="notes/a.txt"))  # relative to the user's home
    expect(got["content"] == text and got["size"] == len(text.encode()), got)
    blob = os.urandom(1 << 20)
    ok(fs(node, sid, "write_bytes", path="/tmp/blob.bin", content_b64=base64.b64encode(blob).decode()))
    got = ok(fs(node, sid, "read_bytes", path="/tmp/blob.bin"))
    expect(base64.b64decode(got["content_b64"]) == blob and got["size"] == len(blob), "binary round trip")
    ok(fs(node, sid, "write_bytes", path="/tmp/empty", content_b64=""))
    expect(ok(fs(node, sid, "read_bytes", path="/tmp/empty"))["content_b64"] == "")
    # Binary is not text.
    expect_error(fs(node, sid, "read", path="/tmp/blob.bin"), 400, "read_bytes")
    # What sandbox code writes reads back through the API, and the other way round.
    r = node.shell(sid, "printf 'from the shell' > /home/user/s.txt; cat /home/user/notes/a.txt | head -c 7")
    expect(r.json["stdout"] == "premiè", r)
    expect(ok(fs(node, sid, "read", path="/home/user/s.txt"))["content"] == "from the shell")


@test
def owners_follow_the_user(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expect(ok(fs(node, sid, "write", path="/tmp/u.txt", content="x"))["owner"] == "user")
    expect(ok(fs(node, sid, "write", path="/root/r.txt", content="x", user="root"))["owner"] == "root")
    r = node.shell(sid, "stat -c '%U %G' /tmp/u.txt; stat -c %U /root/r.txt", user="root")
    expect(r.json["stdout"] == "user user\nroot\n", r)
    expect_error(fs(node, sid, "write", path="/etc/x.conf", content="x"), 403)
    expect_error(fs(node, sid, "read", path="/root/r.txt"), 403)


@test
def the_tree(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expect(ok(fs(node, sid, "mkdir", path="/home/user/p/q/r"))["created"] is True)
    expect(ok(fs(node, sid, "mkdir", path="/home/user/p/q/r"))["created"] is False)
    ok(fs(node, sid, "write", path="/home/user/p/q/r/f.txt", content="f"))
    node.shell(sid, "ln -s /home/user/p/q /home/user/p/link")
    entries = ok(fs(node, sid, "list", path="/home/user/p", depth=3))["entries"]
    by_path = {e["path"]: e for e in entries}
    expect(by_path["/home/user/p/q"]["type"] == "dir" and by_path["/home/user/p/link"]["type"] == "symlink", entries)
    expect(by_path["/home/user/p/link"]["symlink_target"] == "/home/user/p/q", entries)
    f = by_path["/home/user/p/q/r/f.txt"]
    expect(f["size"] == 1 and f["mode"] == "0644" and f["permissions"] == "rw-r--r--" and f["modified_at"], f)
    st = ok(fs(node, sid, "stat", path="/home/user/p/q/r/f.txt"))
    expect(st["name"] == "f.txt" and st["owner"] == "user", st)
    ok(fs(node, sid, "chmod", path="/home/user/p/q/r/f.txt", mode="0600"))
    expect(ok(fs(node, sid, "stat", path="/home/user/p/q/r/f.txt"))["permissions"] == "rw-------")
    moved = ok(fs(node, sid, "move", path="/home/user/p/q/r/f.txt", destination="/home/user/p/g.txt"))
    expect(moved["path"] == "/home/user/p/g.txt", moved)
    ok(fs(node, sid, "write", path="/home/user/p/h.txt", content="h"))
    expect_error(fs(node, sid, "move", path="/home/user/p/h.txt", destination="/home/user/p/g.txt"), 409)
    ok(fs(node, sid, "move", path="/home/user/p/h.txt", destination="/home/user/p/g.txt", overwrite=True))
    expect_error(fs(node, sid, "remove", path="/home/user/p"), 409, "not empty")
    info = ok(fs(node, sid, "info", paths=["/home/user/p/g.txt", "/home/user/nope"]))["entries"]
    expect(info[0]["exists"] is True and info[0]["size"] == 1 and info[1]["exists"] is False, info)
    ok(fs(node, sid, "remove", path="/home/user/p", recursive=True))
    expect_error(fs(node, sid, "stat", path="/home/user/p"), 404)
    expect_error(fs(node, sid, "list", path="/home/user/s.txt"), 400, "Not a directory")


@test
def paths_never_reach_the_host_or_block(ctx):
    node, sid = ctx["node"], ctx["sid"]
    # A file on the host, with a marker, at a path the sandbox tries to reach.
    secret = os.path.join(node.state, "host-secret.txt")
    with open(secret, "w") as f:
        f.write("HOST SECRET")
    node.shell(sid, f"ln -s {secret} /home/user/to-host; ln -s /proc/1/root{secret} /home/user/via-proc; "
                    f"ln -s loop1 /home/user/loop2; ln -s loop2 /home/user/loop1", user="root")
    node.shell(sid, "mkfifo /home/user/fifo")
    for path in ("/home/user/to-host", "/home/user/via-proc", f"/home/user/../../..{secret}", secret):
        r = fs(node, sid, "read", path=path)
        expect(r.status in (403, 404) and "HOST SECRET" not in str(r.body), (path, r))
    expect(open(secret).read() == "HOST SECRET")
    r = fs(node, sid, "write", path="/home/user/to-host", content="overwritten")
    # The link resolves in the sandbox, where that directory does not exist.
    expect_error(r, 404)
    expect(open(secret).read() == "HOST SECRET", "the host's file was written")
    expect_error(fs(node, sid, "remove", path=f"/home/user/../../..{node.state}", recursive=True), 404)
    expect(os.path.exists(secret), "the host's file was removed")
    # FIFOs and devices are refused at once, never read or written.
    t0 = time.monotonic()
    expect_error(fs(node, sid, "read", path="/home/user/fifo"), 400, "not a regular file")
    expect_error(fs(node, sid, "write", path="/home/user/fifo", content="x"), 400)
    expect_error(fs(node, sid, "read_bytes", path="/dev/zero"), 400, "not a regular file")
    expect_error(fs(node, sid, "write", path="/dev/null", content="x"), 400)
    r = node.request("GET", f"/v1/sandboxes/{sid}/fs/raw?path=/home/user/fifo")
    expect_error(r, 400)
    expect(time.monotonic() - t0 < 5, "a FIFO must not block a request")
    expect_error(fs(node, sid, "read", path="/home/user/loop1"), 400)
    expect_error(fs(node, sid, "read", path="/home/user/a\u0000b"), 400, "NUL")
    expect_error(fs(node, sid, "read", path="/" + "a" * 5000), 400, "PATH_MAX")
    expect_error(node.request("GET", f"/v1/sandboxes/{sid}/fs/raw?path=/home/user/a%00b"), 400)


@test
def bad_input(ctx):
    node, sid = ctx["node"], ctx["sid"]
    expect_error(fs(node, sid, "read"), 400, "path")
    expect_error(fs(node, sid, "read", path=5), 400)
    expect_error(fs(node, sid, "read", path="/x", extra=1), 400, "extra")
    expect_error(fs(node, sid, "write_bytes", path="/tmp/x", content_b64="not base64!"), 400, "base64")
    expect_error(fs(node, sid, "write", path="/tmp/x", content="x", mode="999"), 400, "mode")
    expect_error(fs(node, sid, "move", path="/tmp/x"), 400, "destination")
    expect_error(fs(node, sid, "read", path="/tmp/x", user="admin"), 400, "user")
    expect_error(fs(node, sid, "info", paths=[]), 400)
    expect_error(fs(node, "nosuch", "read", path="/tmp/x"), 404)
    expect_error(node.request("GET", f"/v1/sandboxes/{sid}/fs/raw"), 400, "path")
    expect_error(node.request("GET", f"/v1/sandboxes/{sid}/fs/raw?path=/nope"), 404)
    node.shell(sid, "head -c 34000000 /dev/zero > /tmp/big")
    expect_error(fs(node, sid, "read_bytes", path="/tmp/big"), 413, "raw")
    r = node.request("POST", f"/v1/sandboxes/{sid}/pause", {})
    expect(r.status == 200, r)
    expect_error(fs(node, sid, "read", path="/tmp/x"), 409)
    node.request("POST", f"/v1/sandboxes/{sid}/resume", {})


@test
def watches_report_each_kind_of_change(ctx):
    node, sid = ctx["node"], ctx["sid"]
    ok(fs(node, sid, "mkdir", path="/home/user/watched"))
    w = ok(fs(node, sid, "watch", path="watched", recursive=True), 201)
    wid = w["watch_id"]
    expect(w["path"] == "/home/user/watched", w)
    node.shell(sid, "cd ~/watched && echo a > f && echo b >> f && mkdir sub && echo c > sub/g && "
                    "mv f h && chmod 600 h && rm sub/g")
    ok(fs(node, sid, "write", path="/home/user/watched/sub/api.txt", content="from the API"))
    events = ok(node.request("POST", f"/v1/sandboxes/{sid}/fs/watch/{wid}/poll", {}))["events"]
    seen = [(e["type"], e["path"].removeprefix("/home/user/watched/")) for e in events]
    for want in [("create", "f"), ("write", "f"), ("create", "sub"), ("create", "sub/g"), ("rename", "f"),
                 ("create", "h"), ("chmod", "h"), ("remove", "sub/g"), ("create", "sub/api.txt")]:
        expect(want in seen, f"{want} missing from {seen}")
    expect(seen.index(("create", "f")) < seen.index(("rename", "f")) < seen.index(("remove", "sub/g")), seen)
    # Events are handed out once.
    expect(ok(node.request("POST", f"/v1/sandboxes/{sid}/fs/watch/{wid}/poll", {}))["events"] == [])
    ok(node.request("POST", f"/v1/sandboxes/{sid}/fs/watch/{wid}/stop", {}))
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/fs/watch/{wid}/poll", {}), 404, "no watch")
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/fs/watch/w999/poll", {}), 404)
    expect_error(fs(node, sid, "watch", path="/nope"), 404)
    # A watch ends with its sandbox.
    other = ok(node.request("POST", "/v1/sandboxes", {}), 201)["id"]
    wid = ok(fs(node, other, "watch", path="/tmp"), 201)["watch_id"]
    node.request("DELETE", f"/v1/sandboxes/{other}")
    expect_error(node.request("POST", f"/v1/sandboxes/{other}/fs/watch/{wid}/poll", {}), 404)


@test
def import_and_export_as_zip(ctx):
    node, sid = ctx["node"], ctx["sid"]
    blob = os.urandom(70000)
    r = ok(fs(node, sid, "import", files=[
        {"path": "proj/a.txt", "content": "alpha"},
        {"path": "proj/deep/b.bin", "content_b64": base64.b64encode(blob).decode()},
        {"path": "proj/ü ñ.txt", "content": "ünïcode", "mode": "0600"}]))
    expect([f["name"] for f in r["files"]] == ["a.txt", "b.bin", "ü ñ.txt"], r)
    expect(r["files"][2]["mode"] == "0600", r)
    node.shell(sid, "mkfifo ~/proj/fifo; ln -s /etc/passwd ~/proj/link")
    resp = node.request("POST", f"/v1/sandboxes/{sid}/fs/export", {"paths": ["proj", "/etc/hostname"]})
    expect(resp.status == 200 and resp.headers["content-type"] == "application/zip", resp.status)
    path = os.path.join(node.state, "export.zip")
    with open(path, "wb") as f:
        f.write(resp.data)
    out = subprocess.run(["unzip", "-t", path], capture_output=True, text=True)
    expect(out.returncode == 0 and "No errors detected" in out.stdout, out.stdout + out.stderr)
    listing = subprocess.run(["unzip", "-Z1", path], capture_output=True, text=True).stdout.split("\n")
    for name in ("proj/", "proj/a.txt", "proj/deep/", "proj/deep/b.bin", "proj/ü ñ.txt", "hostname"):
        expect(name in listing, f"{name} missing from {listing}")
    expect("proj/fifo" not in listing and "proj/link" not in listing, listing)  # regular files only
    got = subprocess.run(["unzip", "-p", path, "proj/deep/b.bin"], capture_output=True).stdout
    expect(got == blob, "the zipped binary differs")
    # One file comes as it is.
    resp = node.request("POST", f"/v1/sandboxes/{sid}/fs/export", {"paths": ["proj/a.txt"]})
    expect(resp.status == 200 and resp.body == "alpha", resp)
    expect('filename="a.txt"' in resp.headers["content-disposition"], resp.headers)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/fs/export", {"paths": ["/nope"]}), 404)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/fs/export", {"paths": []}), 400)
    expect_error(fs(node, sid, "import", files=[{"path": "x"}]), 400)
    os.unlink(path)


def worker_peak_rss_kib(node):
    peaks = []
    for pid in node.worker_pids():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]))
    return peaks


@test
def a_gibibyte_in_and_out_with_flat_worker_memory(ctx):
    node = ctx["node"]
    # The default memory (512 MiB) with a disk that holds the file: the file's pages count
    # against the sandbox's cgroup, whose limit includes the disk.
    r = node.request("POST", "/v1/sandboxes", {"disk_mb": 2560})
    expect(r.status == 201 and r.json["limits"]["memory_mb"] == 512, r)
    sid = r.json["id"]
    src = os.path.join(node.state, "gib.bin")
    with open(src, "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(1 << 20))
    want = hashlib.sha256(open(src, "rb").read()).hexdigest()
    before = worker_peak_rss_kib(node)
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=300)
    with open(src, "rb") as f:
        conn.request("PUT", f"/v1/sandboxes/{sid}/fs/raw?path=/home/user/gib.bin", body=f,
                     headers={"Authorization": "Bearer " + node.admin_key, "Content-Length": str(1 << 30)})
        resp = conn.getresponse()
        body = resp.read()
    expect(resp.status == 201, body)
    conn.request("GET", f"/v1/sandboxes/{sid}/fs/raw?path=/home/user/gib.bin",
                 headers={"Authorization": "Bearer " + node.admin_key})
    resp = conn.getresponse()
    expect(resp.status == 200 and resp.getheader("Content-Length") == str(1 << 30), resp.status)
    expect('filename="gib.bin"' in resp.getheader("Content-Disposition"), resp.getheader("Content-Disposition"))
    h = hashlib.sha256()
    while chunk := resp.read(1 << 20):
        h.update(chunk)
    expect(h.hexdigest() == want, "the downloaded file differs")
    after = worker_peak_rss_kib(node)
    grew = max(a - b for a, b in zip(after, before)) if len(after) == len(before) else max(after)
    print(f"    worker peak RSS grew by {grew} KiB over a 1 GiB upload and download")
    # Under ASan freed memory waits in a quarantine (256 MiB by default) before reuse, so
    # only a plain build's peak says whether the transfer holds more than a chunk.
    expect(SANITIZED or grew < 16 * 1024, f"worker memory grew by {grew} KiB")
    os.unlink(src)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


def raw(node, method, sid, query, body=None, key="admin", headers=None, chunked=False):
    """A raw transfer; (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
    hdrs = dict(headers or {})
    if key:
        hdrs["Authorization"] = "Bearer " + (node.admin_key if key == "admin" else key)
    if chunked:
        conn.request(method, f"/v1/sandboxes/{sid}/fs/raw?{query}", body=iter([body[:5], body[5:]]),
                     headers=hdrs, encode_chunked=True)
    else:
        conn.request(method, f"/v1/sandboxes/{sid}/fs/raw?{query}", body=body, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


@test
def raw_transfers_pass_nginx_and_the_agent_only_and_the_rest_goes_to_the_worker(ctx):
    """nginx asks warrend about a raw transfer and moves its bytes to and from the agent
    itself (X-Warren-Transfer: direct); what the check does not clear is warrend's to answer,
    the same as ever."""
    node, sid = ctx["node"], ctx["sid"]
    # Direct: an upload with a length, a download; the answers are the worker's own shapes.
    status, h, body = raw(node, "PUT", sid, "path=/home/user/raw/a%20b.txt", b"hello direct\n")
    e = json.loads(body)
    expect(status == 201 and h.get("x-warren-transfer") == "direct", (status, h, body))
    expect(e["path"] == "/home/user/raw/a b.txt" and e["size"] == 13 and e["owner"] == "user", e)
    status, h, body = raw(node, "GET", sid, "path=raw/a%20b.txt")  # relative to the home
    expect((status, body, h.get("x-warren-transfer")) == (200, b"hello direct\n", "direct"), (status, h, body))
    expect(h["content-type"] == "text/plain; charset=utf-8" and h["content-length"] == "13", h)
    expect(h["content-disposition"] == "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt", h)
    expect(h["cache-control"] == "no-store" and h.get("x-request-id"), h)
    status, h, body = raw(node, "PUT", sid, "path=/root/r.bin&user=root&mode=0600", b"\0\1\2")
    expect(status == 201 and json.loads(body)["owner"] == "root" and json.loads(body)["mode"] == "0600", body)
    status, h, body = raw(node, "GET", sid, "path=/root/r.bin&user=root")
    expect((status, body, h["content-type"]) == (200, b"\0\1\2", "application/octet-stream"), (status, h))
    # The agent's refusals, in Warren's JSON, with their statuses.
    # The same words as every native error (and as the worker's route, which a chunked upload
    # takes): the status's, with what was wrong in the message.
    for method, query, want, code, words in [
            ("GET", "path=/nope", 404, "not_found", "No such file"),
            ("GET", "path=/home/user/raw", 400, "bad_request", "directory"),
            ("GET", "path=/root/r.bin", 403, "forbidden", "Permission denied"),
            ("PUT", "path=/etc/passwd", 403, "forbidden", "Permission denied"),
            ("PUT", "path=/home/user/raw/a%20b.txt/x", 400, "bad_request", "Not a directory")]:
        status, h, body = raw(node, method, sid, query, b"x" if method == "PUT" else None)
        answer = json.loads(body)
        expect(status == want and answer["code"] == code and words in answer["error"] and
               h.get("x-warren-transfer") == "direct", (method, query, status, body))
        if method == "PUT":
            by_worker = raw(node, method, sid, query, b"xxxxxxx", chunked=True)
            expect(by_worker[0] == status and json.loads(by_worker[2]) == answer and
                   "x-warren-transfer" not in by_worker[1], (by_worker, answer))
    # Refused before a large body is through: the answer still arrives whole.
    status, h, body = raw(node, "PUT", sid, "path=/proc/nope/x", b"y" * (8 << 20))
    expect(status in (403, 404) and json.loads(body)["error"], (status, body))
    # What goes to the worker: a chunked upload (no length for the agent), a bad key, a bad
    # query, another key's or an unknown sandbox, a paused one.
    status, h, body = raw(node, "PUT", sid, "path=/home/user/raw/chunked.txt", b"hello chunked\n", chunked=True)
    expect(status == 201 and "x-warren-transfer" not in h and json.loads(body)["size"] == 14, (status, h, body))
    expect(raw(node, "GET", sid, "path=/home/user/raw/chunked.txt")[2] == b"hello chunked\n")
    status, h, body = raw(node, "GET", sid, "path=/home/user/raw/chunked.txt", key=None)
    expect(status == 401 and json.loads(body)["code"] == "unauthorized", (status, body))
    status, h, body = raw(node, "GET", sid, "path=/home/user/raw/chunked.txt", key="wk_nosuchkey")
    expect(status == 401, (status, body))
    for query, want, words in [("", 400, "path"), ("path=/x&color=red", 400, "color"),
                               ("path=/home/user/a%00b", 400, "NUL"), ("path=/x&user=admin", 400, "user")]:
        status, h, body = raw(node, "GET", sid, query)
        expect(status == want and words in json.loads(body)["error"] and "x-warren-transfer" not in h,
               (query, status, body))
    other = node.create_key("raw-other")["key"]
    expect(raw(node, "GET", sid, "path=/home/user/raw/chunked.txt", key=other)[0] == 404)
    expect(raw(node, "GET", "nosuch0sandbox", "path=/x")[0] == 404)
    expect(node.request("POST", f"/v1/sandboxes/{sid}/pause", {}).status == 200)
    status, h, body = raw(node, "GET", sid, "path=/home/user/raw/chunked.txt")
    expect(status == 409 and "paused" in json.loads(body)["error"], (status, body))
    expect(node.request("POST", f"/v1/sandboxes/{sid}/resume", {}).status == 200)
    # A PUT with no body at all (no length either) makes an empty file, as through the worker.
    with socket.create_connection(("127.0.0.1", node.http_port), timeout=30) as c:
        c.sendall(f"PUT /v1/sandboxes/{sid}/fs/raw?path=/home/user/raw/empty HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {node.admin_key}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := c.recv(65536):
            answer += chunk
    expect(answer.startswith(b"HTTP/1.1 201") and b'"size":0' in answer, answer)
    # A URI with dot segments: nginx serves the path they resolve to, through the worker.
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    conn.request("GET", f"/v1/sandboxes/{sid}/fs/raw/../raw?path=/home/user/raw/chunked.txt",
                 headers={"Authorization": "Bearer " + node.admin_key})
    r = conn.getresponse()
    expect((r.status, r.read(), r.getheader("X-Warren-Transfer")) == (200, b"hello chunked\n", None), r.status)
    conn.close()
    # A key over its rate gets warrend's 429, not an error of nginx's.
    slow = node.create_key("raw-slow", rate=1, burst=2)["key"]
    own = node.sandbox(key=slow)
    answers = [raw(node, "GET", own, "path=/nope", key=slow) for _ in range(4)]
    limited = [a for a in answers if a[0] == 429]
    expect(limited and all(json.loads(a[2])["code"] == "rate_limited" and a[1].get("retry-after")
                           for a in limited) and all(a[0] in (404, 429) for a in answers),
           [(a[0], a[2][:80]) for a in answers])
    expect(wait_until(lambda: node.request("DELETE", f"/v1/sandboxes/{own}", key=slow).status == 200,
                      timeout=10))
    # A request handed on to the worker costs its key one token and one request, not two:
    # with a burst of 8 (1 a second back), 6 handed-on requests in a row are all served.
    frugal = node.create_key("raw-frugal", rate=1, burst=8)
    own = node.sandbox(key=frugal["key"])
    time.sleep(1.5)  # the create's token back
    before = node.request("GET", "/v1/usage", key=frugal["key"]).json["requests"]
    answers = [raw(node, "GET", own, "path=/x&color=red", key=frugal["key"])[0] for _ in range(6)]
    expect(answers == [400] * 6, answers)
    after = node.request("GET", "/v1/usage", key=frugal["key"]).json["requests"]
    expect(after - before == 7, (before, after))  # the six, and the second usage call
    # Handed on and refused for its length before the body is read: still paid for, once.
    time.sleep(4)  # tokens for the two and the usage call
    for _ in range(2):
        status = raw(node, "PUT", own, "color=red", key=frugal["key"],
                     headers={"Content-Length": str((1 << 50) + 1)})[0]
        expect(status == 413, status)
    last = node.request("GET", "/v1/usage", key=frugal["key"]).json["requests"]
    expect(last - after == 3, (after, last))
    # The bucket is empty now: the delete waits for a token.
    expect(wait_until(lambda: node.request("DELETE", f"/v1/sandboxes/{own}", key=frugal["key"]).status == 200,
                      timeout=10))
    # files.sock takes nginx's group, but a process of that group is not nginx: without the
    # sandbox's token (only the workers can make it) it gets a 403 and nothing is written.
    sock = os.path.join(node.state, "sandboxes", sid, "files.sock")
    request = urllib.parse.quote(json.dumps({"op": "fs", "action": "write", "path": "/root/planted", "user": "root"}))
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
             "s.sendall(sys.argv[2].encode()); print(s.recv(4096).decode().split('\\r\\n')[0])\n")
    for target in (f"/fs?r={request}", f"/fs?t={'0' * 64}&r={request}", f"/fs?t=&r={request}"):
        head = f"PUT {target} HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"
        out = subprocess.run(["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups", "python3", "-c",
                              probe, sock, head], capture_output=True, text=True, timeout=30)
        expect(out.stdout.split()[1:2] in (["400"], ["403"]), (target[:20], out.stdout, out.stderr))
    expect(node.shell(sid, "ls /root/planted", user="root").json["exit_code"] != 0, "a file was planted")
    expect(oct(os.stat(os.path.join(node.state, "files.secret")).st_mode & 0o777) == "0o600")
    # The check itself is nginx's alone.
    r = node.request("GET", f"/v1/sandboxes/{sid}/fs/raw-route?path=/x")
    expect(r.status == 404 and "files.sock" not in r.body, r)


@test
def an_upload_larger_than_the_disk_is_a_507_and_the_sandbox_lives_on(ctx):
    node = ctx["node"]
    sid = node.request("POST", "/v1/sandboxes", {"disk_mb": 64, "memory_mb": 64}).json["id"]
    body = b"\0" * (100 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=120)
    conn.request("PUT", f"/v1/sandboxes/{sid}/fs/raw?path=/home/user/big.bin", body=body,
                 headers={"Authorization": "Bearer " + node.admin_key})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    expect(resp.status == 507 and "space" in answer["error"], (resp.status, answer))
    out = node.shell(sid, "echo alive; rm /home/user/big.bin; df -m /home/user | tail -1").json
    expect(out["stdout"].startswith("alive\n"), out)
    expect(node.request("GET", f"/v1/sandboxes/{sid}").json["status"] == "running")
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def nothing_is_left_on_the_host(ctx):
    delete_all_and_expect_nothing_left(ctx["node"])


def setup():
    node = Node(workers=2, threads=32).start()
    r = node.request("POST", "/v1/sandboxes", {})
    assert r.status == 201, r
    return {"node": node, "sid": r.json["id"]}


main(setup, lambda ctx: ctx["node"].destroy())
