"""A node on an existing Redis reached by URL (TCP, password, database number) instead of
the embedded one: everything works, the state lands in that database, and a wrong password
is a clear 503 rather than a crash."""
import os
import shutil
import subprocess
import tempfile
import time

from harness import Node, expect, expect_error, free_port, main, test


@test
def node_runs_on_a_redis_url_with_password_and_database(ctx):
    node, port, _ = ctx
    h = node.request("GET", "/healthz", key=None)
    expect(h.status == 200 and h.json["redis"] == "ok", h)
    expect(not os.path.exists(os.path.join(node.state, "redis", "redis.pid")), "no embedded Redis may run")
    k = node.create_key("external")
    expect(node.request("GET", "/v1/usage", key=k["key"]).status == 200)
    keys = subprocess.run(["redis-cli", "-p", str(port), "-a", "s3cret", "--no-auth-warning", "-n", "3", "keys", "key:*"],
                          capture_output=True, text=True).stdout.split()
    expect(f"key:{k['id']}" in keys, keys)


@test
def wrong_password_is_a_clear_503(ctx):
    _, port, _ = ctx
    bad = Node(redis_url=f"redis://:wrong@127.0.0.1:{port}/3")
    try:
        out = bad.warren("start", check=False)
        expect(out.returncode != 0, "start must fail without a usable Redis")
        h = bad.request("GET", "/healthz", key=None)
        expect(h.status == 503 and "AUTH refused" in h.json["redis"], h)
        expect("wrong" not in bad.log_text(), "the password must never be logged")
    finally:
        bad.admin_key = None
        bad.destroy()


def setup():
    port = free_port()
    d = tempfile.mkdtemp(prefix="warren-ext-redis-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret",
                             "--save", "", "--appendonly", "no", "--dir", d, "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "-a", "s3cret", "--no-auth-warning", "ping"],
                          capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    try:
        node = Node(redis_url=f"redis://:s3cret@127.0.0.1:{port}/3").start()
    except Exception:
        proc.terminate()
        shutil.rmtree(d, ignore_errors=True)
        raise
    return node, port, (proc, d)


def teardown(ctx):
    node, _, (proc, d) = ctx
    try:
        node.destroy()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


main(setup, teardown)
