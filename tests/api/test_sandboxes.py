"""Sandbox lifecycle, shell and run through the real nginx: what a user of the native API
does, and what must be left on the host afterwards (nothing)."""
import json
import os
import signal
import subprocess
import time

from harness import Node, expect, expect_error, main, parallel, test, wait_until



@test
def create_answers_201_with_a_dashless_id_and_limits(node):
    r = node.request("POST", "/v1/sandboxes", {"memory_mb": 256, "cpu": 0.5, "disk_mb": 64,
                                               "metadata": {"team": "a"}, "timeout_ms": 60000})
    expect(r.status == 201, r)
    sb = r.json
    expect(sb["id"].isalnum() and sb["id"].islower() and "-" not in sb["id"], sb)
    expect(sb["status"] == "running" and sb["image"] == "base" and sb["node_id"], sb)
    expect(sb["limits"] == {"cpu": 0.5, "memory_mb": 256, "disk_mb": 64}, sb)
    expect(sb["metadata"] == {"team": "a"} and sb["end_at"] and sb["created_at"], sb)
    got = node.request("GET", f"/v1/sandboxes/{sb['id']}")
    expect(got.status == 200 and got.json["id"] == sb["id"], got)
    d = node.request("DELETE", f"/v1/sandboxes/{sb['id']}")
    expect(d.status == 200, d)


@test
def shell_runs_as_user_or_root_with_env_and_cwd(node):
    sid = node.sandbox(env={"GREETING": "hello"})
    r = node.shell(sid, "id -un; pwd; echo $GREETING $EXTRA; echo oops >&2; exit 3", env={"EXTRA": "there"})
    expect(r.status == 200, r)
    expect(r.json["stdout"] == "user\n/home/user\nhello there\n", r)
    expect(r.json["stderr"] == "oops\n" and r.json["exit_code"] == 3, r)
    expect(r.json["timed_out"] is False and r.json["truncated"] is False and r.json["duration_ms"] >= 0, r)
    r = node.shell(sid, "id -u; pwd", user="root", cwd="/tmp")
    expect(r.json["stdout"] == "0\n/tmp\n", r)
    init_env = node.shell(sid, "tr '\\0' '\\n' < /proc/1/environ", user="root").json["stdout"]
    expect("GREETING" not in init_env, f"the sandbox's env must reach commands only: {init_env!r}")
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_shell_call_is_bash_on_its_static_build(node):
    # The runtime packages bring bash-static; a one-shot `bash -c` runs on it, and nothing
    # inside can tell but /proc/self/exe. A shell run by the command is the usual bash. Name
    # lookups stay with files: a user that does not exist is no crash (a static bash that
    # loads the host's systemd NSS module dies on it).
    sid = node.sandbox()
    try:
        r = node.shell(sid, 'echo "$0 $BASH $BASH_VERSION"; readlink /proc/$$/exe; cat /proc/$$/comm; '
                            'bash -c "readlink /proc/\\$\\$/exe; true"; echo ~root ~nosuchuser; compgen -u | tr "\\n" " "; '
                            'echo; [[ abc =~ ^a(.)c$ ]] && echo "${BASH_REMATCH[1]}"; printf "%s\\n" "é"')
        expect(r.status == 200 and r.json["exit_code"] == 0, r)
        version = subprocess.run(["/bin/bash", "-c", "echo $BASH_VERSION"], capture_output=True, text=True).stdout
        expect(r.json["stdout"] == f"/bin/bash /bin/bash {version.strip()}\n/usr/bin/bash-static\nbash\n"
                                   "/usr/bin/bash\n/root ~nosuchuser\nroot user nobody \nb\né\n", r.json)
    finally:
        node.request("DELETE", f"/v1/sandboxes/{sid}")


def host_uid_of(marker):
    """The host uid of the one process on the host whose command line is `sleep <marker>`."""
    want = f"sleep\0{marker}\0".encode()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() != want:
                    continue
            with open(f"/proc/{pid}/status") as f:
                return int(f.read().split("\nUid:\t")[1].split()[0])
        except (OSError, IndexError):
            pass
    return None


@test
def each_sandbox_has_its_own_unprivileged_uid_range(node):
    sids = [node.sandbox(), node.sandbox()]
    roots = []
    for sid in sids:
        # Each sleeper's argument is unique on the host: that is how it is found there.
        mark = f"{os.getpid()}.{len(roots)}"
        node.shell(sid, f"sleep {mark}1 &", user="root")
        roots.append(host_uid_of(f"{mark}1"))
        node.shell(sid, f"sleep {mark}2 &")
        user_uid = host_uid_of(f"{mark}2")
        expect(roots[-1] is not None and roots[-1] >= 100000, roots)
        expect(user_uid == roots[-1] + 1000, f"user is root's uid + 1000 outside: {user_uid} {roots}")
        node.shell(sid, "pkill sleep", user="root")
    expect(abs(roots[0] - roots[1]) >= 65536, f"the ranges must not overlap: {roots}")
    # Through the id map, the template and the host's /usr are root's inside, home is user's.
    owners = node.shell(sids[0], "stat -c '%n %u:%g' /usr/bin/env /etc/passwd /root /home/user /dev /dev/shm")
    expect(owners.json["stdout"] == "/usr/bin/env 0:0\n/etc/passwd 0:0\n/root 0:0\n"
           "/home/user 1000:1000\n/dev 0:0\n/dev/shm 0:0\n", owners)
    made = node.shell(sids[0], "touch /tmp/mine ~/mine && stat -c %u /tmp/mine ~/mine")
    expect(made.json["stdout"] == "1000\n1000\n", made)
    for sid in sids:
        node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def run_python_reports_the_error_and_the_line(node):
    sid = node.sandbox()
    r = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "x = 2\nprint(x * 21)\n\nundefined_name + 1\n"})
    expect(r.status == 200, r)
    ex = r.json
    expect(ex["logs"]["stdout"] == ["42\n"], ex)
    expect(ex["error"]["name"] == "NameError" and "undefined_name" in ex["error"]["value"], ex)
    expect('line 4' in ex["error"]["traceback"], ex)
    ok = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "import numpy, pandas\nprint(numpy.arange(3).sum())"})
    expect(ok.json["error"] is None and ok.json["logs"]["stdout"] == ["3\n"], ok)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def run_each_language(node):
    sid = node.sandbox()
    programs = {
        "javascript": ("console.log(6 * 7)", "42\n"),
        "bash": ("echo $((6 * 7))", "42\n"),
        "typescript": ("const n: number = 6 * 7;\nconsole.log(n)", "42\n"),
        "r": ("cat(6 * 7, '\\n')", "42 \n"),
        "java": ("int n = 6 * 7;\nSystem.out.println(n);", "42\n"),
    }
    for lang, (code, out) in programs.items():
        r = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": code, "language": lang, "timeout_ms": 60000})
        expect(r.status == 200 and r.json["error"] is None and r.json["logs"]["stdout"] == [out], f"{lang}: {r}")
    # A fresh run: its own interpreter, sharing nothing with the contexts.
    for lang, code, out in (("python", "print(6 * 7)", "42\n"),
                            ("java", "public class Main { public static void main(String[] a) { System.out.println(6 * 7); } }",
                             "42\n"), ("r", "cat(6 * 7, '\\n')", "42 \n")):
        r = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": code, "language": lang, "fresh": True,
                                                              "timeout_ms": 60000})
        expect(r.status == 200 and r.json["error"] is None and r.json["logs"]["stdout"] == [out], f"fresh {lang}: {r}")
        expect("context_id" not in r.json, r)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "1", "fresh": True, "context_id": "python"}),
                 400, "fresh")
    r = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "throw new TypeError('bad')", "language": "javascript"})
    expect(r.json["error"]["name"] == "TypeError" and r.json["error"]["value"] == "bad", r)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def command_timeout_kills_a_process_that_ignores_sigterm(node):
    sid = node.sandbox()
    t0 = time.time()
    r = node.shell(sid, "trap '' TERM; (trap '' TERM; sleep 1000) & sleep 1000", timeout_ms=1000)
    expect(r.status == 200 and r.json["timed_out"] is True, r)
    expect(time.time() - t0 < 5, "the timeout must end the call")
    left = node.shell(sid, "ps -eo comm | grep -c '^sleep$' || true")
    expect(left.json["stdout"].strip() == "0", left)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def output_is_capped_and_invalid_utf8_becomes_replacement_characters(node):
    sid = node.sandbox()
    r = node.shell(sid, "head -c 5000000 /dev/zero | tr '\\0' a")
    expect(r.status == 200 and r.json["truncated"] is True and len(r.json["stdout"]) == 1 << 20, r.json["truncated"])
    r = node.shell(sid, "printf 'ok\\377\\376end'")
    expect(r.json["stdout"] == "ok\ufffd\ufffdend", r)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def pause_freezes_and_refuses_calls_unless_auto_resume(node):
    sid = node.sandbox()
    node.shell(sid, "nohup sh -c 'while true; do date +%s%N > /tmp/tick; sleep 0.05; done' >/dev/null 2>&1 &")
    p = node.request("POST", f"/v1/sandboxes/{sid}/pause")
    expect(p.status == 200 and p.json["status"] == "paused" and p.json["end_at"] is None, p)
    expect_error(node.shell(sid, "true"), 409, "paused")
    time.sleep(0.3)
    r = node.request("POST", f"/v1/sandboxes/{sid}/resume")
    expect(r.status == 200 and r.json["status"] == "running", r)
    a = node.shell(sid, "cat /tmp/tick").json["stdout"]
    time.sleep(0.2)
    b = node.shell(sid, "cat /tmp/tick").json["stdout"]
    expect(a != b, "the loop must run again after resume")
    auto = node.sandbox(auto_resume=True)
    node.request("POST", f"/v1/sandboxes/{auto}/pause")
    w = node.shell(auto, "echo awake")
    expect(w.status == 200 and w.json["stdout"] == "awake\n", w)
    expect(node.request("GET", f"/v1/sandboxes/{auto}").json["status"] == "running")
    for s in (sid, auto):
        node.request("DELETE", f"/v1/sandboxes/{s}")


@test
def paused_time_is_not_running_time_in_usage(node):
    k = node.create_key("meter", max_sandboxes=2)["key"]
    sid = node.sandbox(key=k)
    t0 = time.time()
    node.request("POST", f"/v1/sandboxes/{sid}/pause", key=k)
    time.sleep(1.5)
    node.request("POST", f"/v1/sandboxes/{sid}/resume", key=k)
    node.request("DELETE", f"/v1/sandboxes/{sid}", key=k)
    wall_ms = (time.time() - t0) * 1000
    ran = node.request("GET", "/v1/usage", key=k).json["sandbox_run_ms"]
    expect(0 < ran < wall_ms - 1300, f"ran {ran} ms of {wall_ms:.0f} ms, 1500 of them paused")


@test
def low_ports_can_be_served_inside(node):
    sid = node.sandbox()
    r = node.shell(sid, "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 80)); print(\"bound\")'")
    expect(r.json["stdout"] == "bound\n", r)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def metrics_come_from_the_cgroup(node):
    sid = node.sandbox(memory_mb=256)
    node.shell(sid, "head -c 20000000 /dev/urandom > /tmp/blob; python3 -c 'sum(range(3000000))'")
    m = node.request("GET", f"/v1/sandboxes/{sid}/metrics")
    expect(m.status == 200, m)
    j = m.json
    expect(j["cpu"]["usage_seconds"] > 0 and j["memory"]["limit_bytes"] == 256 << 20, j)
    expect(j["memory"]["cgroup_limit_bytes"] == (256 + 1024 + 64) << 20, j)  # the disk's files count too
    expect(j["disk"]["used_bytes"] >= 20000000 and j["pids"]["current"] >= 1, j)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def list_filters_by_state_and_metadata_and_pages(node):
    k = node.create_key("lister", max_sandboxes=5)["key"]
    ids = [node.sandbox(key=k, metadata={"n": str(i), "kind": "odd" if i % 2 else "even"}) for i in range(3)]
    node.request("POST", f"/v1/sandboxes/{ids[1]}/pause", key=k)
    allsb = node.request("GET", "/v1/sandboxes", key=k).json
    expect([s["id"] for s in allsb["sandboxes"]] == ids and allsb["next_cursor"] is None, allsb)
    odd = node.request("GET", "/v1/sandboxes?metadata.kind=odd", key=k).json["sandboxes"]
    expect([s["id"] for s in odd] == [ids[1]], odd)
    paused = node.request("GET", "/v1/sandboxes?state=paused", key=k).json["sandboxes"]
    expect([s["id"] for s in paused] == [ids[1]], paused)
    seen, cursor = [], None
    for _ in range(5):
        q = "/v1/sandboxes?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = node.request("GET", q, key=k).json
        seen += [s["id"] for s in page["sandboxes"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    expect(seen == ids, seen)
    expect_error(node.request("GET", "/v1/sandboxes?state=sleeping", key=k), 400, "state")
    expect_error(node.request("GET", "/v1/sandboxes?limit=0", key=k), 400, "limit")
    for s in ids:
        node.request("DELETE", f"/v1/sandboxes/{s}", key=k)


@test
def another_keys_sandbox_is_not_found(node):
    a = node.create_key("a")["key"]
    b = node.create_key("b")["key"]
    sid = node.sandbox(key=a)
    expect_error(node.request("GET", f"/v1/sandboxes/{sid}", key=b), 404)
    expect_error(node.shell(sid, "true", key=b), 404)
    expect_error(node.request("DELETE", f"/v1/sandboxes/{sid}", key=b), 404)
    expect(node.request("GET", "/v1/sandboxes", key=b).json["sandboxes"] == [])
    node.request("DELETE", f"/v1/sandboxes/{sid}", key=a)


@test
def quota_holds_exactly_under_50_parallel_creates(node):
    k = node.create_key("quota", max_sandboxes=4, rate=1000, burst=1000)["key"]
    results = parallel(50, lambda i: node.request("POST", "/v1/sandboxes", {}, key=k, timeout=60))
    created = [r.json["id"] for r in results if getattr(r, "status", 0) == 201]
    refused = [r for r in results if getattr(r, "status", 0) == 429]
    expect(len(created) == 4 and len(refused) == 46, [getattr(r, "status", r) for r in results])
    expect("4 of its 4 sandboxes" in refused[0].json["error"], refused[0])
    usage = node.request("GET", "/v1/usage", key=k).json
    expect(usage["sandboxes"] == {"used": 4, "limit": 4}, usage)
    for s in created:
        node.request("DELETE", f"/v1/sandboxes/{s}", key=k)
    expect(node.request("GET", "/v1/usage", key=k).json["sandboxes"]["used"] == 0)


@test
def lifetime_is_enforced_by_the_node_and_leaves_nothing(node):
    sid = node.sandbox(timeout_ms=60000)
    node.shell(sid, "nohup sleep 1000 >/dev/null 2>&1 &")
    r = node.request("POST", f"/v1/sandboxes/{sid}/timeout", {"timeout_ms": 1500})
    expect(r.status == 200, r)
    expect(wait_until(lambda: node.request("GET", f"/v1/sandboxes/{sid}").status == 404, timeout=10), "not expired")
    expect(wait_until(lambda: not node.leftovers(), timeout=5), node.leftovers())


@test
def bad_input_is_a_clear_400_and_nothing_is_half_made(node):
    expect_error(node.request("POST", "/v1/sandboxes", {"image": "ubuntu:99"}), 400, "unknown image 'ubuntu:99'")
    expect_error(node.request("POST", "/v1/sandboxes", {"memory_mb": -5}), 400, "memory_mb")
    expect_error(node.request("POST", "/v1/sandboxes", {"memory_mb": 10 ** 9}), 400, "memory_mb")
    expect_error(node.request("POST", "/v1/sandboxes", {"timeout_ms": "soon"}), 400, "timeout_ms")
    expect_error(node.request("POST", "/v1/sandboxes", {"cpu": 1000}), 400, "cpu")
    expect_error(node.request("POST", "/v1/sandboxes", {"env": {"A=B": "x"}}), 400, "not a variable name")
    expect_error(node.request("POST", "/v1/sandboxes", {"env": {"A": 5}}), 400, "env")
    expect_error(node.request("POST", "/v1/sandboxes", raw=b'{"env": {"A": "x\\u0000y"}}'), 400, "invalid JSON")
    expect_error(node.request("POST", "/v1/sandboxes", {"colour": "red"}), 400, "unknown field 'colour'")
    big_meta = {f"k{i}": "v" * 200 for i in range(50)}
    expect_error(node.request("POST", "/v1/sandboxes", {"metadata": big_meta}), 400, "metadata")
    sid = node.sandbox()
    expect_error(node.shell(sid, "pwd", cwd="/does/not/exist"), 400, "does not exist")
    expect_error(node.shell(sid, "pwd", cwd="relative"), 400, "absolute")
    expect_error(node.shell(sid, "pwd", user="admin"), 400, "user")
    expect_error(node.shell(sid, "x" * 200000), 400, "cmd")
    big = node.request("POST", f"/v1/sandboxes/{sid}/shell", raw=b'{"cmd": "' + b"y" * (10 << 20) + b'"}')
    expect_error(big, 413, "limit")
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "1", "language": "cobol"}), 400, "cobol")
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/timeout", {"timeout_ms": 10 ** 12}), 400, "timeout_ms")
    expect_error(node.request("GET", "/v1/sandboxes/nosuchsandbox"), 404)
    expect(node.shell(sid, "echo still fine").json["stdout"] == "still fine\n")
    node.request("DELETE", f"/v1/sandboxes/{sid}")
    expect(wait_until(lambda: not node.leftovers(), timeout=5), node.leftovers())


@test
def sandboxes_survive_kill_minus_nine_of_warrend_and_are_adopted(node):
    sid = node.sandbox(timeout_ms=60000)
    node.shell(sid, "echo kept > /tmp/state")
    for pid in [node.pid("warrend")] + node.worker_pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    node.warren("start")
    r = node.shell(sid, "cat /tmp/state")
    expect(r.status == 200 and r.json["stdout"] == "kept\n", r)
    node.request("POST", f"/v1/sandboxes/{sid}/timeout", {"timeout_ms": 1000})
    expect(wait_until(lambda: node.request("GET", f"/v1/sandboxes/{sid}").status == 404, timeout=10),
           "the new master must enforce lifetimes")


@test
def a_full_node_answers_503_and_frees_the_slot_on_delete(node):
    small = Node(max_sandboxes_per_node=2).start()
    try:
        a, b = small.sandbox(), small.sandbox()
        r = small.request("POST", "/v1/sandboxes", {})
        expect_error(r, 503, "at capacity")
        expect(r.headers.get("retry-after"), r.headers)
        expect(small.request("GET", "/v1/usage").json["sandboxes"]["used"] == 2, "a refused create holds no quota")
        small.request("DELETE", f"/v1/sandboxes/{a}")
        c = small.sandbox()
        for s in (b, c):
            small.request("DELETE", f"/v1/sandboxes/{s}")
    finally:
        small.destroy()


@test
def a_sandbox_whose_runtime_dies_is_cleaned_up_by_the_node(node):
    k = node.create_key("dying", max_sandboxes=1)["key"]
    sid = node.sandbox(key=k)
    agent = [p for p in node.leftovers() if p.startswith("process")]
    host_pids = []
    for entry in agent:
        pid = int(entry.split()[1])
        with open(f"/proc/{pid}/cgroup") as f:
            if f"/{sid}\n" in f.read():
                host_pids.append(pid)
    expect(len(host_pids) == 1, host_pids)
    os.kill(host_pids[0], signal.SIGKILL)
    expect(wait_until(lambda: node.request("GET", f"/v1/sandboxes/{sid}", key=k).status == 404, timeout=10),
           "a dead sandbox must be swept")
    expect(wait_until(lambda: not [x for x in node.leftovers() if sid in x], timeout=5), node.leftovers())
    expect(node.request("GET", "/v1/usage", key=k).json["sandboxes"]["used"] == 0, "its quota must come back")


@test
def the_sweep_leaves_a_runtime_being_deleted_to_its_delete(node):
    # A delete first notes on the record that it is stopping the runtime; between the stop
    # and the settling, the emptied runtime must not look lost to the sweep, or both settle
    # it and the delete may answer before the quota is back. Here the note is made and the
    # runtime killed by hand, and the sweep (every second) must keep off for a minute.
    k = node.create_key("stopping", max_sandboxes=1)["key"]
    sid = node.sandbox(key=k)
    sock = os.path.join(node.state, "redis", "redis.sock")
    subprocess.run(["redis-cli", "-s", sock, "HSET", f"sandbox:{sid}", "stopping_at", str(int(time.time() * 1000))],
                   check=True, capture_output=True, timeout=10)
    os.kill(node.sandbox_pid(sid), signal.SIGKILL)
    time.sleep(3)
    expect(node.request("GET", f"/v1/sandboxes/{sid}", key=k).status == 200, "the sweep settled a sandbox being deleted")
    expect(node.request("DELETE", f"/v1/sandboxes/{sid}", key=k).status == 200)
    expect(node.request("GET", "/v1/usage", key=k).json["sandboxes"]["used"] == 0, "the delete gives the quota back")
    expect(wait_until(lambda: not [x for x in node.leftovers() if sid in x], timeout=5), node.leftovers())


@test
def a_create_that_fails_in_the_runtime_leaves_nothing(node):
    broken = Node(init_path="/nonexistent/warren-init").start()
    try:
        r = broken.request("POST", "/v1/sandboxes", {})
        expect_error(r, 500, "warren-init")
        expect(broken.request("GET", "/v1/usage").json["sandboxes"]["used"] == 0, "the quota must be released")
        expect(broken.request("GET", "/v1/sandboxes").json["sandboxes"] == [])
        expect(not broken.leftovers(), broken.leftovers())
    finally:
        broken.destroy()


@test
def creates_that_fit_take_a_warm_sandbox_and_the_pool_refills(node):
    expect(wait_until(lambda: len(node.pooled()[0]) == 2), f"the pool must fill: {node.pooled()}")
    warm = node.pooled()[0]
    r = node.request("POST", "/v1/sandboxes", {"env": {"FROM": "pool"}, "memory_mb": 300, "cpu": 0.5,
                                               "metadata": {"who": "warm"}, "timeout_ms": 60000})
    expect(r.status == 201 and r.json["id"] in warm, f"a default-shaped create takes a warm one: {r}")
    sid = r.json["id"]
    expect(r.json["limits"] == {"cpu": 0.5, "memory_mb": 300, "disk_mb": 1024}, r)
    expect(r.json["metadata"] == {"who": "warm"} and r.json["status"] == "running", r)
    # The key's environment and limits reach the warm sandbox, as they do a cold one.
    out = node.shell(sid, "echo $FROM; hostname")
    expect(out.json["stdout"] == f"pool\n{sid}\n", out)
    with open(f"/sys/fs/cgroup/memory/{node.cgroup_parent}/{sid}/memory.limit_in_bytes") as f:
        # memory_mb, plus the disk and /dev/shm (tmpfs, whose pages count as memory)
        expect(int(f.read()) == (300 + 1024 + 64) << 20, "memory limit of the taken sandbox")
    with open(f"/sys/fs/cgroup/cpu/{node.cgroup_parent}/{sid}/cpu.cfs_quota_us") as f:
        expect(int(f.read()) == 50000, "cpu quota of the taken sandbox")
    # Warm sandboxes are nobody's: never listed, never found.
    listed = {s["id"] for s in node.request("GET", "/v1/sandboxes").json["sandboxes"]}
    expect(not (listed & node.pooled()[0]), listed)
    for other in node.pooled()[0]:
        expect(node.request("GET", f"/v1/sandboxes/{other}").status == 404)
    expect(wait_until(lambda: len(node.pooled()[0]) == 2 and sid not in node.pooled()[0]),
           f"the pool must refill: {node.pooled()}")
    # Another disk size cannot come from the pool: a cold start.
    cold = node.request("POST", "/v1/sandboxes", {"disk_mb": 64})
    expect(cold.status == 201 and cold.json["id"] not in warm | node.pooled()[0], cold)
    for i in (sid, cold.json["id"]):
        expect(node.request("DELETE", f"/v1/sandboxes/{i}").status == 200)


@test
def a_runtime_no_record_accounts_for_is_stopped_by_the_node(node):
    # What a crash can leave behind: a sandbox's cgroups, with a process still in them, and its
    # directory, but no record. The node's sweep stops the process and removes the rest.
    orphan = "orphan" + "7" * 14
    home = os.path.join(node.state, "sandboxes", orphan)
    os.makedirs(os.path.join(home, "root"))
    proc = subprocess.Popen(["sleep", "300"])
    try:
        for ctrl in ("memory", "pids", "cpu", "cpuacct", "freezer"):
            parent = f"/sys/fs/cgroup/{ctrl}/{node.cgroup_parent}"
            if os.path.isdir(parent) and not os.path.isdir(f"{parent}/{orphan}"):
                os.mkdir(f"{parent}/{orphan}")
                with open(f"{parent}/{orphan}/cgroup.procs", "w") as f:
                    f.write(str(proc.pid))
        # Found orphaned by every sweep for 5 s first (a Redis coming back behind catches up).
        time.sleep(3)
        expect(proc.poll() is None, "an orphan is given 5 s")
        expect(wait_until(lambda: proc.poll() is not None, timeout=15), "the orphan's process must be killed")
        expect(wait_until(lambda: not [x for x in node.leftovers() if orphan in x], timeout=5), node.leftovers())
        expect(not os.path.exists(home), os.listdir(os.path.dirname(home)))
        with open(os.path.join(node.state, "logs", "warrend.log")) as f:
            said = [json.loads(line) for line in f if orphan in line]
        expect([(e["msg"], e["outcome"]) for e in said] == [("a runtime without a record", "stopped")], said)
    finally:
        proc.kill()
        proc.wait()


@test
def deleting_everything_leaves_nothing_on_the_host(node):
    for s in node.request("GET", "/v1/sandboxes").json["sandboxes"]:
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")
    expect(wait_until(lambda: not node.leftovers(), timeout=5), node.leftovers())


@test
def stopping_the_node_stops_the_warm_pool(node):
    expect(wait_until(lambda: len(node.pooled()[0]) == 2), node.pooled())
    # One is taken off the pool's list as a worker killed mid-create would leave it: running,
    # nobody's, no longer offered. The node must still find and stop it.
    sock = os.path.join(node.state, "redis", "redis.sock")
    taken = subprocess.run(["redis-cli", "-s", sock, "--raw", "EVAL",
                            "return redis.call('LPOP', redis.call('KEYS', 'pool:*')[1])", "0"],
                           capture_output=True, text=True).stdout.strip()
    expect(taken.count(".") == 2, taken)
    node.stop()
    expect(not node._on_host(), f"a stopped node keeps no warm sandbox: {node._on_host()}")
    node.start()


def setup():
    return Node(workers=2, threads=32).start()


main(setup, lambda n: n.destroy())
