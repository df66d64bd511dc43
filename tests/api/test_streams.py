"""run/stream through the real nginx, read as a client reads server-sent events: one event
at a time, as the program produces its output."""
import http.client
import json
import time

from harness import Node, delete_all_and_expect_nothing_left, expect, expect_error, main, test, wait_until


class EventStream:
    """A POST whose answer is read event by event (http.client undoes the chunking)."""

    def __init__(self, node, path, body, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        hdrs = {"Authorization": "Bearer " + node.admin_key, "Content-Type": "application/json",
                "Accept": "text/event-stream", **(headers or {})}
        self.t0 = time.monotonic()
        self.conn.request("POST", path, body=json.dumps(body).encode(), headers=hdrs)
        self.resp = self.conn.getresponse()
        self.comments = 0

    def next(self):
        """(event, data, seconds since the request), or None at the end."""
        event, data = None, None
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event:
                return event, data, time.monotonic() - self.t0

    def all(self):
        out = []
        while (e := self.next()) is not None:
            out.append(e)
        return out

    def close(self):
        self.conn.close()



@test
def output_arrives_as_it_is_written_and_the_stream_ends_with_the_status(node):
    sid = node.sandbox()
    s = EventStream(node, f"/v1/sandboxes/{sid}/run/stream", {"code": (
        "import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('oops', file=sys.stderr)\n"
        "raise ValueError('late')\n")})
    expect(s.resp.status == 200 and s.resp.getheader("Content-Type") == "text/event-stream", s.resp.status)
    start = s.next()
    expect(start[0] == "start" and start[1]["pid"] > 1, start)
    text = ""
    while not text.endswith("\n"):  # a line may come in more than one write
        first = s.next()
        expect(first[0] == "stdout", first)
        text += first[1]["text"]
    expect(text == "first\n", text)
    # The program sleeps 2 s after its first line: that line must not wait for the end.
    expect(first[2] < 1.5, f"the first line came after {first[2]:.2f} s")
    rest = s.all()
    names = [e[0] for e in rest]
    expect(names[-1] == "end" and "error" in names and "stderr" in names, names)
    end = rest[-1][1]
    expect(end["exit_code"] == 1 and end["error"]["name"] == "ValueError" and end["error"]["value"] == "late", end)
    expect("line 5" in end["error"]["traceback"], end)
    s.close()
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def silence_is_filled_with_keepalive_comments(node):
    sid = node.sandbox()
    s = EventStream(node, f"/v1/sandboxes/{sid}/run/stream", {"code": "sleep 1.5; echo done", "language": "bash"})
    events = s.all()
    expect(events[-1][0] == "end" and events[-1][1]["exit_code"] == 0, events)
    expect(s.comments >= 2, f"{s.comments} keep-alive comments in 1.5 s of silence at 300 ms")
    s.close()
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_client_that_goes_away_leaves_the_run_going_unless_it_asked(node):
    sid = node.sandbox()
    for kill, marker in ((False, "/tmp/kept"), (True, "/tmp/killed")):
        s = EventStream(node, f"/v1/sandboxes/{sid}/run/stream",
                        {"code": f"echo go; sleep 1; touch {marker}", "language": "bash", "kill_on_disconnect": kill})
        expect(s.next()[0] == "start" and s.next()[0] == "stdout", "started")
        s.close()
    time.sleep(2)
    seen = node.shell(sid, "ls /tmp/kept /tmp/killed 2>/dev/null; ps -eo args --no-headers | grep -c '^sleep 1' || true")
    expect(seen.json["stdout"] == "/tmp/kept\n0\n", seen.json)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_character_cut_between_chunks_arrives_whole(node):
    sid = node.sandbox()
    s = EventStream(node, f"/v1/sandboxes/{sid}/run/stream",
                    {"code": "printf 'a\\303'; sleep 0.5; printf '\\251b\\n'; printf '\\377\\n'", "language": "bash"})
    text = "".join(e[1]["text"] for e in s.all() if e[0] == "stdout")
    expect(text == "aéb\n\ufffd\n", repr(text))
    s.close()
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def bad_stream_requests_are_refused_before_anything_runs(node):
    sid = node.sandbox()
    path = f"/v1/sandboxes/{sid}/run/stream"
    expect_error(node.request("POST", path, {"code": "1"}, headers={"Accept": "application/json"}), 406)
    expect_error(node.request("POST", path, {"code": "1", "language": "cobol"}), 400, "language")
    expect_error(node.request("POST", path, {"code": "1", "kill_on_disconnect": "yes"}), 400, "kill_on_disconnect")
    expect_error(node.request("POST", path, {"code": "x" * (9 << 20)}), 413)
    expect_error(node.request("POST", "/v1/sandboxes/nosuch/run/stream", {"code": "1"}), 404)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "1", "kill_on_disconnect": True}), 400)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def nothing_is_left_on_the_host(node):
    delete_all_and_expect_nothing_left(node)


def setup():
    return Node(workers=2, threads=32, stream_keepalive_ms=300).start()


main(setup, lambda n: n.destroy())
