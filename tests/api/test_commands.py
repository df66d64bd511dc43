"""Background commands and ptys through the real nginx: started, followed, killed and
timed out as a client would, including across a restart of every worker."""
import base64
import os
import signal
import time

from harness import Node, delete_all_and_expect_nothing_left, expect, expect_error, main, test, wait_until



def start(node, sid, cmd, **fields):
    r = node.request("POST", f"/v1/sandboxes/{sid}/commands", {"cmd": cmd, **fields})
    expect(r.status == 201 and r.json["command_id"] and r.json["pid"] > 1, r)
    return r.json["command_id"]


def logs(node, sid, cid, **offsets):
    r = node.request("POST", f"/v1/sandboxes/{sid}/commands/{cid}/logs", offsets)
    expect(r.status == 200, r)
    return r.json


def follow(node, sid, cid, timeout=20):
    """Reads a command's output to its end as a client would: from the last offsets."""
    out, err, off = "", "", {"stdout_offset": 0, "stderr_offset": 0}
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = logs(node, sid, cid, **off)
        out += got["stdout"]
        err += got["stderr"]
        off = {"stdout_offset": got["stdout_offset"], "stderr_offset": got["stderr_offset"]}
        if got["status"] != "running":
            return out, err, got
        time.sleep(0.05)
    raise AssertionError(f"command {cid} did not end")


@test
def a_background_command_is_followed_to_its_end_across_a_restart_of_every_worker(node):
    sid = node.sandbox()
    cid = start(node, sid, "for i in $(seq 1 30); do echo line $i; echo warn $i >&2; sleep 0.1; done; exit 7")
    first = logs(node, sid, cid)
    # Every worker that served the start goes; the command lives in the sandbox.
    workers = node.worker_pids()
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    node.wait_workers(len(workers), exclude=workers)
    out, err, last = follow(node, sid, cid)
    expect(out == "".join(f"line {i}\n" for i in range(1, 31)), out)
    expect(err == "".join(f"warn {i}\n" for i in range(1, 31)), err)
    expect(last["status"] == "exited" and last["exit_code"] == 7, last)
    expect(first["status"] == "running", first)
    listed = node.request("GET", f"/v1/sandboxes/{sid}/commands").json["commands"]
    mine = [c for c in listed if c["command_id"] == cid]
    expect(mine and mine[0]["status"] == "exited" and mine[0]["exit_code"] == 7 and mine[0]["ended_at"], listed)
    expect(mine[0]["cmd"].startswith("for i in"), mine)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def logs_keep_the_last_mebibyte_and_say_how_much_was_dropped(node):
    sid = node.sandbox()
    cid = start(node, sid, "head -c 3000000 /dev/zero | tr '\\0' 'x'")
    expect(wait_until(lambda: logs(node, sid, cid, stdout_offset=3000000)["status"] == "exited"), "ended")
    got = logs(node, sid, cid)
    expect(got["stdout_dropped"] == 3000000 - (1 << 20), got["stdout_dropped"])
    expect(len(got["stdout"]) == 1 << 20 and got["stdout_offset"] == 3000000, got["stdout_offset"])
    # Reading on from the end gives nothing new.
    again = logs(node, sid, cid, stdout_offset=got["stdout_offset"])
    expect(again["stdout"] == "" and again["stdout_dropped"] == 0, again)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_character_split_between_reads_arrives_whole(node):
    sid = node.sandbox()
    # "é" is two bytes; the first read stops between them while the command still runs.
    cid = start(node, sid, "printf 'a\\303'; sleep 1; printf '\\251b'")
    time.sleep(0.4)
    got = logs(node, sid, cid)
    expect(got["stdout"] == "a" and got["stdout_offset"] == 1, got)
    rest = logs(node, sid, cid, stdout_offset=got["stdout_offset"])
    while rest["status"] == "running":
        time.sleep(0.1)
        rest = logs(node, sid, cid, stdout_offset=got["stdout_offset"])
    expect(rest["stdout"] == "éb" and rest["stdout_offset"] == 4, rest)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def kill_and_timeout_end_the_whole_tree(node):
    sid = node.sandbox()
    cid = start(node, sid, "trap '' TERM; (setsid sh -c 'trap \"\" TERM; sleep 301') & sleep 302")
    time.sleep(0.3)
    k = node.request("POST", f"/v1/sandboxes/{sid}/commands/{cid}/kill")
    expect(k.status == 200 and k.json["status"] == "killed", k)
    expect(wait_until(lambda: logs(node, sid, cid)["status"] == "killed"), "killed")
    expect(logs(node, sid, cid)["exit_code"] == 137, logs(node, sid, cid))
    t = start(node, sid, "trap '' TERM; (setsid sleep 303 &); sleep 304", timeout_ms=500)
    expect(wait_until(lambda: logs(node, sid, t)["status"] == "timeout", timeout=5), logs(node, sid, t))
    left = node.shell(sid, "ps -eo args --no-headers | grep -c '^sleep 30[1-4]' || true")
    expect(left.json["stdout"].strip() == "0", left.json)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def commands_take_cwd_env_and_user_and_refuse_bad_input(node):
    sid = node.sandbox(env={"FROM_SANDBOX": "1"})
    cid = start(node, sid, "pwd; id -un; echo $FROM_SANDBOX$EXTRA", cwd="/tmp", env={"EXTRA": "2"}, user="root")
    out, _, last = follow(node, sid, cid)
    expect(out == "/tmp\nroot\n12\n" and last["exit_code"] == 0, out)
    base = f"/v1/sandboxes/{sid}/commands"
    expect_error(node.request("POST", base, {"cmd": ""}), 400, "cmd")
    expect_error(node.request("POST", base, {"cmd": "true", "colour": 1}), 400, "colour")
    expect_error(node.request("POST", base, {"cmd": "true", "cwd": "/nope"}), 400, "cwd")
    expect_error(node.request("POST", base, {"cmd": "true", "timeout_ms": "soon"}), 400, "timeout_ms")
    expect_error(node.request("POST", base, {"cmd": "x" * (2 << 20)}), 413)
    expect_error(node.request("POST", f"{base}/c999/logs"), 404)
    expect_error(node.request("POST", f"{base}/bad-id/kill"), 404)
    expect_error(node.request("POST", f"{base}/{cid}/logs", {"stdout_offset": -1}), 400, "stdout_offset")
    expect_error(node.request("POST", "/v1/sandboxes/nosuchsandbox/commands", {"cmd": "true"}), 404)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


def pty_send(node, sid, pty, text):
    r = node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/input",
                     {"data_b64": base64.b64encode(text.encode()).decode()})
    expect(r.status == 200, r)


def pty_read_until(node, sid, pty, needle, timeout=10):
    seen = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/output")
        expect(r.status == 200, r)
        seen += base64.b64decode(r.json["data_b64"])
        if needle.encode() in seen:
            return seen.decode(errors="replace"), r.json
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never came; got {seen[-500:]!r}")


@test
def a_pty_is_a_real_terminal_that_follows_resizes(node):
    sid = node.sandbox()
    r = node.request("POST", f"/v1/sandboxes/{sid}/pty", {"cols": 100, "rows": 30})
    expect(r.status == 201 and r.json["pty_id"] and r.json["pid"] > 1, r)
    pty = r.json["pty_id"]
    pty_send(node, sid, pty, "stty size; echo $TERM; tty\n")
    out, _ = pty_read_until(node, sid, pty, "/dev/pts/")
    expect("30 100" in out and "xterm-256color" in out, out)
    rz = node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/resize", {"cols": 120, "rows": 40})
    expect(rz.status == 200, rz)
    pty_send(node, sid, pty, "stty size\n")
    out, _ = pty_read_until(node, sid, pty, "40 120")
    # Job control: a job suspended with ^Z is listed and brought back.
    pty_send(node, sid, pty, "sleep 50\n")
    time.sleep(0.3)
    pty_send(node, sid, pty, "\x1a")
    out, _ = pty_read_until(node, sid, pty, "Stopped")
    pty_send(node, sid, pty, "jobs; kill %1\n")
    out, _ = pty_read_until(node, sid, pty, "sleep 50")
    # A full-screen program draws, and quits on its key.
    pty_send(node, sid, pty, "top -d 0.2\n")
    out, _ = pty_read_until(node, sid, pty, "load average")
    expect("\x1b[" in out, "top draws with escape sequences")
    pty_send(node, sid, pty, "q")
    # top reads what waits on the terminal in one go: the next line goes once it has quit.
    expect(wait_until(lambda: node.shell(sid, "pgrep -x top").json["exit_code"] == 1, timeout=10), "top did not quit")
    pty_send(node, sid, pty, "exit 5\n")
    deadline = time.time() + 10
    while time.time() < deadline:
        o = node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/output").json
        if not o["alive"]:
            break
        time.sleep(0.05)
    expect(o["alive"] is False and o["exit_code"] == 5, o)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/input", {"data_b64": "eA=="}), 409)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_pty_timeout_ends_its_whole_tree(node):
    sid = node.sandbox()
    r = node.request("POST", f"/v1/sandboxes/{sid}/pty", {"cmd": "trap '' TERM HUP; (setsid sleep 311 &); sleep 312",
                                                          "timeout_ms": 500})
    pty = r.json["pty_id"]
    deadline = time.time() + 5
    while time.time() < deadline:
        o = node.request("POST", f"/v1/sandboxes/{sid}/pty/{pty}/output").json
        if not o["alive"]:
            break
        time.sleep(0.05)
    expect(o["alive"] is False and o["exit_code"] == 137, o)
    left = node.shell(sid, "ps -eo args --no-headers | grep -c '^sleep 31[12]' || true")
    expect(left.json["stdout"].strip() == "0", left.json)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def pty_bad_input_is_refused(node):
    sid = node.sandbox()
    pty = node.request("POST", f"/v1/sandboxes/{sid}/pty", {"cmd": "sleep 100"}).json["pty_id"]
    base = f"/v1/sandboxes/{sid}/pty/{pty}"
    for dims in ({"cols": 0, "rows": 0}, {"cols": 100000, "rows": 10}, {"cols": 10}):
        expect_error(node.request("POST", f"{base}/resize", dims), 400)
    expect_error(node.request("POST", f"{base}/input", {"data_b64": "not base64!"}), 400, "data_b64")
    expect_error(node.request("POST", f"{base}/input", {}), 400, "data_b64")
    # The limit is on the decoded bytes: a mebibyte is taken (and written as far as the
    # terminal takes it, which here, with nobody reading, is not far), one more is refused.
    r = node.request("POST", f"{base}/input", {"data_b64": base64.b64encode(b"x" * (1 << 20)).decode()})
    expect(r.status in (200, 429) and "at most" not in r.body, r)
    r = node.request("POST", f"{base}/input", {"data_b64": base64.b64encode(b"x" * ((1 << 20) + 1)).decode()})
    expect_error(r, 413, "at most")
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/pty/p999/output"), 404)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/pty", {"cols": 0}), 400, "cols")
    k = node.request("POST", f"{base}/kill")
    expect(k.status == 200 and k.json["status"] == "killed", k)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def nothing_is_left_on_the_host(node):
    delete_all_and_expect_nothing_left(node)


def setup():
    return Node(workers=2, threads=32).start()


main(setup, lambda n: n.destroy())
