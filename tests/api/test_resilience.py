"""warrend under trouble, through nginx: a worker killed during a burst is replaced and no
request after the replacement fails; Redis going away gives 503s and workers recover
by themselves; SIGTERM lets in-flight requests finish; SIGHUP swaps workers without a
failed request; kill -9 of everything and a new start picks up where it was, also in the
middle of making sandboxes; a start removes the sandbox templates no sandbox runs on."""
import http.client
import os
import signal
import subprocess
import threading
import time

from harness import Node, expect, expect_error, main, test, wait_until


def load(node, key, seconds, threads=4):
    """Sends requests from several threads for a while; returns [(start_time, status)]."""
    log, stop = [], time.time() + seconds
    lock = threading.Lock()

    def run():
        while time.time() < stop:
            t0 = time.time()
            try:
                s = node.request("GET", "/v1/usage", key=key, timeout=10).status
            except Exception as e:  # a connection error counts as a failure
                s = repr(e)
            with lock:
                log.append((t0, s))

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts, log


@test
def killed_worker_is_replaced_and_later_requests_all_succeed(node):
    key = node.create_key("crash", rate=100000, burst=100000)["key"]
    before = node.wait_workers(2)
    ts, log = load(node, key, 3.0)
    time.sleep(1.0)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    after = node.wait_workers(2, exclude=[victim])
    replaced_at = time.time()
    for t in ts:
        t.join()
    expect(victim not in after and len(after) == 2, after)
    late = [s for t0, s in log if t0 > replaced_at]
    expect(len(late) > 20, f"too few requests after the replacement: {len(late)}")
    expect(all(s == 200 for s in late), [s for s in late if s != 200][:5])
    early_failures = [s for t0, s in log if t0 <= replaced_at and s != 200]
    print(f"     {len(log)} requests, {len(early_failures)} failed around the kill, {len(late)} after: all 200")


@test
def redis_outage_gives_503_and_workers_recover_by_themselves(node):
    key = node.create_key("outage")["key"]
    expect(node.request("GET", "/v1/usage", key=key).status == 200)
    os.kill(node.pid("redis"), signal.SIGKILL)
    time.sleep(0.2)
    for _ in range(6):  # every worker thread that serves one sees the outage, none crashes
        expect_error(node.request("GET", "/v1/usage", key=key), 503, "redis unavailable")
    h = node.request("GET", "/healthz", key=None)
    expect(h.status == 503 and h.json["status"] == "degraded" and "unavailable" in h.json["redis"], h)
    subprocess.run(["redis-server", os.path.join(node.state, "redis", "redis.conf")], check=True)
    sock = os.path.join(node.state, "redis", "redis.sock")
    deadline = time.time() + 10
    while time.time() < deadline:  # an operator waits for Redis to answer, as does this
        if subprocess.run(["redis-cli", "-s", sock, "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    statuses = [node.request("GET", "/v1/usage", key=key).status for _ in range(30)]
    expect(statuses == [200] * 30, statuses)  # the key survived too: Redis keeps an AOF
    expect(node.request("GET", "/healthz", key=None).json["status"] == "ok")


@test
def reload_swaps_workers_without_a_failed_request(node):
    key = node.create_key("reload", rate=100000, burst=100000)["key"]
    before = set(node.wait_workers(2))
    conf = os.path.join(node.state, "warren.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text + "workers = 3\n")
    ts, log = load(node, key, 2.5)
    time.sleep(0.8)
    os.kill(node.pid("warrend"), signal.SIGHUP)
    for t in ts:
        t.join()
    failures = [s for _, s in log if s != 200]
    expect(not failures, f"{len(failures)} of {len(log)} failed: {failures[:5]}")
    deadline = time.time() + 10
    while time.time() < deadline and (set(node.worker_pids()) & before or len(node.worker_pids()) != 3):
        time.sleep(0.05)
    now = set(node.worker_pids())
    expect(len(now) == 3 and not (now & before), f"before {before}, now {now}")
    print(f"     {len(log)} requests during the reload, 0 failed")


@test
def sigterm_lets_an_in_flight_upload_finish(node):
    result = {}

    def slow_upload():
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        body = b'{"name": "slow"' + b" " * 30000 + b"}"
        conn.putrequest("POST", "/v1/keys")
        conn.putheader("Authorization", "Bearer " + node.admin_key)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        for i in range(0, len(body), 3000):  # about two seconds on the wire
            conn.send(body[i:i + 3000])
            time.sleep(0.2)
        r = conn.getresponse()
        result["status"], result["body"] = r.status, r.read()

    t = threading.Thread(target=slow_upload)
    t.start()
    time.sleep(0.5)
    master = node.pid("warrend")
    os.kill(master, signal.SIGTERM)
    t.join()
    expect(result.get("status") == 201, result)
    deadline = time.time() + 15
    while time.time() < deadline and os.path.exists(f"/proc/{master}"):
        time.sleep(0.05)
    expect(not os.path.exists(f"/proc/{master}/status") or "zombie" in open(f"/proc/{master}/status").read(),
           "master should exit after draining")
    expect_error(node.request("GET", "/v1/usage"), 503, "not answering")
    node.warren("start")  # back for the next test
    expect(node.request("GET", "/v1/usage").status == 200)


@test
def kill_minus_nine_of_everything_then_start_again(node):
    key = node.create_key("survivor")["key"]
    master = node.pid("warrend")
    workers = node.worker_pids()
    for pid in [master] + workers:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    expect_error(node.request("GET", "/v1/usage", key=key), 503)
    node.warren("start")
    statuses = [node.request("GET", "/v1/usage", key=key).status for _ in range(10)]
    expect(statuses == [200] * 10, statuses)


def orphans_of(node):
    """Processes of an earlier warrend of this node (its command line) that outlived it:
    init's children other than the running master."""
    conf = os.path.join(node.state, "warren.conf").encode()
    master = str(node.pid("warrend"))
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if conf in cmd and ppid == "1" and state != "Z" and pid != master:
            found.append(int(pid))
    return found


@test
def killing_warrend_while_it_makes_sandboxes_leaves_nothing_that_blocks_the_next(node):
    """kill -9 while the workers create sandboxes and the master refills the warm pool: a
    user namespace helper cloned then must die with its warrend (it held a copy of the
    host-wide nftables lock, which then stopped every node's network changes for good), and
    the next warrend creates as before; what the kills left half made, the node's sweep
    removes. Six kills, at different points of the creates."""
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            try:
                r = node.request("POST", "/v1/sandboxes", {}, timeout=30)
                if r.status == 201:
                    node.request("DELETE", f"/v1/sandboxes/{r.json['id']}", timeout=30)
            except Exception:  # warrend is being killed: the next try goes to the new one
                time.sleep(0.05)

    for round in range(6):
        ts = [threading.Thread(target=churn) for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.3 + 0.15 * round)
        for pid in [node.pid("warrend")] + node.worker_pids():
            os.kill(pid, signal.SIGKILL)
        stop.set()
        for t in ts:
            t.join()
        stop.clear()
        node.warren("start")
    expect(wait_until(lambda: not orphans_of(node), timeout=5), f"left behind: {orphans_of(node)}")
    t0 = time.monotonic()
    r = node.request("POST", "/v1/sandboxes", {}, timeout=30)
    expect(r.status == 201 and time.monotonic() - t0 < 10, r)
    # What a kill left half made (a runtime, a link, rules, a reservation) is the sweep's once
    # its record falls due, a minute after the create or delete began; every counter in Redis
    # (the key's quota, the node's capacity and uid slots) is back with it.
    for s in node.request("GET", "/v1/sandboxes?limit=100").json["sandboxes"]:
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")
    expect(wait_until(lambda: not node.leftovers(), timeout=90, step=1), node.leftovers())


@test
def a_start_prunes_the_templates_no_sandbox_runs_on(node):
    templates = os.path.join(node.state, "templates")
    current = os.path.realpath(os.path.join(templates, "base"))
    r = node.request("POST", "/v1/sandboxes", {})
    expect(r.status == 201, r)
    sid = r.json["id"]
    link = os.path.join(node.state, "sandboxes", sid, "template")
    expect(os.readlink(link) == current, f"{link} -> {os.readlink(link)}, not {current}")
    sandboxes = os.path.join(node.state, "sandboxes")
    expect(sandbox_dirs_mount(sandboxes) == "tmpfs", "the sandboxes' directories are not on their tmpfs")
    node.warren("stop")  # the sandbox keeps running, and its directory with it
    expect(sandbox_dirs_mount(sandboxes) is not None and os.path.isdir(os.path.join(sandboxes, sid)),
           "a stop with a sandbox running unmounted its directory")
    # Two older templates: one the sandbox is made to run on, one that nothing uses.
    for name in ("base-v0-used", "base-v0-unused"):
        os.makedirs(os.path.join(templates, name, "etc"))
    os.remove(link)
    os.symlink(os.path.join(templates, "base-v0-used"), link)
    node.warren("start")
    left = sorted(os.listdir(templates))
    expect(left == sorted(["base", os.path.basename(current), "base-v0-used"]), left)
    expect(node.shell(sid, "echo alive").json["stdout"] == "alive\n")
    expect(node.request("DELETE", f"/v1/sandboxes/{sid}").status == 200)
    expect(not os.path.exists(os.path.join(node.state, "sandboxes", sid)), "the sandbox's directory stayed")
    node.warren("stop")
    expect(sandbox_dirs_mount(sandboxes) is None, "a stop with no sandbox left kept their tmpfs")
    node.warren("start")
    left = sorted(os.listdir(templates))
    expect(left == sorted(["base", os.path.basename(current)]), left)
    expect(sandbox_dirs_mount(sandboxes) == "tmpfs", "a start did not mount the sandboxes' tmpfs again")


def sandbox_dirs_mount(path):
    """The type of the file system mounted at path, or None."""
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[2]
    return None


def setup():
    return Node(workers=2, threads=8).start()


main(setup, lambda n: n.destroy())
