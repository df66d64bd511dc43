"""Stateful interpreter contexts through the real nginx: state kept between runs in each
language that has them, notebook-like results, interrupts that keep state, kernels that die
and come back, and runs that wait their turn."""
import base64
import json
import time

from harness import Node, delete_all_and_expect_nothing_left, expect, expect_error, main, parallel, test


def run(node, sid, code, **fields):
    r = node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": code, **fields}, timeout=60)
    expect(r.status == 200, r)
    return r.json


def main_text(execution):
    mains = [r for r in execution["results"] if r["is_main_result"]]
    return mains[0]["text"] if mains else None


@test
def variables_imports_and_definitions_survive_between_runs_in_each_language(node):
    sid = node.sandbox()
    cases = {
        "python": ("import math\ndef area(r):\n    return math.pi * r * r\nn = 3", "round(area(n), 2)", "28.27"),
        "javascript": ("const util = require('util');\nfunction twice(x) { return 2 * x }\nlet n = 21", "twice(n)", "42"),
        "typescript": ("interface P { x: number }\nconst p: P = { x: 20 };\nfunction add(a: number): number { return a + p.x }",
                       "add(22)", "42"),
        "bash": ("shout() { echo \"${1^^}\"; }\ndeclare -a words=(warren sandbox)\ncd /tmp", "shout \"${words[1]}\"; pwd", None),
        "r": ("square <- function(v) v * v\nn <- 6", "square(n) + 6", "[1] 42"),
        "java": ("import java.util.function.*;\nint n = 6;\nIntUnaryOperator sq = v -> v * v;", "sq.applyAsInt(n) + 6", "42"),
    }
    for language, (first, second, want) in cases.items():
        a = run(node, sid, first, language=language)
        expect(a["error"] is None and a["context_id"] == language, (language, a))
        b = run(node, sid, second, language=language)
        expect(b["error"] is None and b["execution_count"] == 2, (language, b))
        if want is not None:
            expect(main_text(b) == want, (language, b))
        else:
            expect(b["logs"]["stdout"] == ["SANDBOX\n/tmp\n"], (language, b))
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_plot_comes_back_as_a_png_without_savefig(node):
    sid = node.sandbox()
    ex = run(node, sid, "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')")
    pngs = [r["png"] for r in ex["results"] if "png" in r]
    expect(len(pngs) == 1, ex)
    raw = base64.b64decode(pngs[0])
    expect(raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 1000, raw[:16])
    width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    expect(width > 100 and height > 100, (width, height))
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def rich_results_carry_every_format_the_object_offers(node):
    sid = node.sandbox()
    ex = run(node, sid, (
        "import pandas as pd\n"
        "class Card:\n"
        "    def _repr_html_(self): return '<b>card</b>'\n"
        "    def _repr_json_(self): return {'kind': 'card'}\n"
        "    def __repr__(self): return 'Card()'\n"
        "display(Card())\n"
        "pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\n"))
    shown, main_result = ex["results"][0], ex["results"][-1]
    expect(not shown["is_main_result"] and shown["html"] == "<b>card</b>" and shown["text"] == "Card()", shown)
    expect(json.loads(shown["json"]) == {"kind": "card"}, shown)
    expect(main_result["is_main_result"] and "<table" in main_result["html"] and "a  b" in main_result["text"],
           main_result)
    js = run(node, sid, "({a: 1, list: [1, 2]})", language="javascript")
    expect(json.loads(main_text_json(js)) == {"a": 1, "list": [1, 2]}, js)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


def main_text_json(execution):
    return [r for r in execution["results"] if r["is_main_result"]][0]["json"]


@test
def errors_name_the_line_and_files_written_are_reported(node):
    sid = node.sandbox()
    ex = run(node, sid, "x = 1\ny = 2\nraise KeyError('missing')\n")
    expect(ex["error"]["name"] == "KeyError" and ex["error"]["value"] == "'missing'", ex)
    expect("line 3" in ex["error"]["traceback"] and "kernels" not in ex["error"]["traceback"], ex["error"])
    expect(ex["exit_code"] == 1, ex)
    js = run(node, sid, "let q = 1;\nnull.boom;", language="javascript")
    expect(js["error"]["name"] == "TypeError" and ":2" in js["error"]["traceback"], js["error"])
    files = run(node, sid, "open('report.csv', 'w').write('a,b\\n1,2\\n')")
    expect(files["files"] == [{"path": "/home/user/report.csv", "size": 8}], files)
    # Every language's writes are seen under the directory the cell starts in (a cell that
    # moves on is seen from there next time); unchanged files and hidden directories are not.
    sh = run(node, sid, "mkdir -p /tmp/out && cd /tmp/out && printf abc > a.txt", language="bash")
    sh2 = run(node, sid, "printf abcd > b.txt; mkdir -p .cache; echo x > .cache/c", language="bash")
    expect(sh["files"] == [], sh)
    expect(sh2["files"] == [{"path": "/tmp/out/b.txt", "size": 4}], sh2)
    r = run(node, sid, "cat(1, file = 'r.txt')", language="r")
    expect(r["files"] == [{"path": "/home/user/r.txt", "size": 1}], r)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_timeout_interrupts_the_cell_and_keeps_the_state(node):
    sid = node.sandbox()
    run(node, sid, "kept = 'yes'")
    t0 = time.time()
    ex = run(node, sid, "while True:\n    pass", timeout_ms=500)
    expect(ex["timed_out"] is True and ex["error"]["name"] == "TimeoutError", ex)
    expect(time.time() - t0 < 5, "the interrupt ends the run")
    expect(main_text(run(node, sid, "kept")) == "'yes'", "state survives an interrupt")
    sh = run(node, sid, "X=1; sleep 30; echo never", language="bash", timeout_ms=500)
    expect(sh["timed_out"] is True and sh["logs"]["stdout"] == [], sh)
    expect(run(node, sid, "echo $X", language="bash")["logs"]["stdout"] == ["1\n"], "bash keeps its state")
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def large_results_pass_and_garbage_on_the_event_pipe_is_dropped(node):
    sid = node.sandbox()
    big = run(node, sid, "class Big:\n    def _repr_html_(self): return '<p>' + 'x' * 400000 + '</p>'\nBig()")
    expect(big["error"] is None and len(big["results"][0]["html"]) == 400007, {k: big[k] for k in ("error",)})
    # User code can write to the kernel's event pipe: a line too long to keep, or one that is
    # not JSON, is dropped and the run still ends as it should.
    junk = run(node, sid, "import os\nos.write(3, b'{' + b'x' * (9 << 20) + b'\\n')\nos.write(3, b'not json\\n')\n7 * 6")
    expect(junk["error"] is None and main_text(junk) == "42", {k: junk[k] for k in ("error", "results")})
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def the_interrupt_call_stops_a_long_cell_and_keeps_the_state(node):
    import threading
    sid = node.sandbox()
    run(node, sid, "kept = 42\nimport time")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=run(node, sid, "while True:\n    time.sleep(0.01)")))
    t.start()
    time.sleep(0.5)
    i = node.request("POST", f"/v1/sandboxes/{sid}/contexts/python/interrupt")
    expect(i.status == 200, i)
    t.join(10)
    expect(not t.is_alive() and out["r"]["error"]["name"] == "KeyboardInterrupt", out)
    expect(out["r"]["timed_out"] is False, out)
    expect(main_text(run(node, sid, "kept")) == "42", "state survives the interrupt")
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_context_that_dies_is_reported_and_restarts(node):
    sid = node.sandbox()
    run(node, sid, "lost = 1")
    died = run(node, sid, "import os\nprint('bye', flush=True)\nos._exit(3)")
    expect(died["error"]["name"] == "ContextDied" and died["exit_code"] == 3, died)
    expect(died["logs"]["stdout"] == ["bye\n"], died)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "1"}), 409, "restart")
    listed = node.request("GET", f"/v1/sandboxes/{sid}/contexts").json["contexts"]
    expect([c["status"] for c in listed if c["context_id"] == "python"] == ["dead"], listed)
    r = node.request("POST", f"/v1/sandboxes/{sid}/contexts/python/restart")
    expect(r.status == 200 and r.json["status"] == "idle", r)
    fresh = run(node, sid, "'lost' in dir()")
    expect(main_text(fresh) == "False" and fresh["execution_count"] == 1, fresh)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def contexts_are_made_listed_and_deleted_and_keep_apart(node):
    sid = node.sandbox()
    r = node.request("POST", f"/v1/sandboxes/{sid}/contexts", {"language": "python", "env": {"WHO": "mine"}})
    expect(r.status == 201 and r.json["context_id"] and r.json["language"] == "python", r)
    cid = r.json["context_id"]
    run(node, sid, "v = 'default'")
    run(node, sid, "v = 'own'", context_id=cid)
    expect(main_text(run(node, sid, "v")) == "'default'", "the default context is its own")
    own = run(node, sid, "import os\n(v, os.environ['WHO'], os.environ.get('ONCE'))", context_id=cid, env={"ONCE": "1"})
    expect(main_text(own) == "('own', 'mine', '1')", own)
    expect(main_text(run(node, sid, "os.environ.get('ONCE')", context_id=cid)) is None, "a run's env is the run's")
    ids = {c["context_id"] for c in node.request("GET", f"/v1/sandboxes/{sid}/contexts").json["contexts"]}
    expect({cid, "python"} <= ids, ids)
    d = node.request("DELETE", f"/v1/sandboxes/{sid}/contexts/{cid}")
    expect(d.status == 200, d)
    expect_error(node.request("POST", f"/v1/sandboxes/{sid}/run", {"code": "1", "context_id": cid}), 404)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def runs_in_one_context_wait_their_turn(node):
    sid = node.sandbox()
    run(node, sid, "import time\norder = []")
    results = parallel(3, lambda i: node.request("POST", f"/v1/sandboxes/{sid}/run",
                                                 {"code": f"time.sleep(0.3)\norder.append({i})"}, timeout=30))
    expect(all(r.status == 200 and r.json["error"] is None for r in results), [r for r in results])
    expect(main_text(run(node, sid, "sorted(order)")) == "[0, 1, 2]", "every run ran")
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def a_context_streams_its_output_and_results(node):
    sid = node.sandbox()
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    conn.request("POST", f"/v1/sandboxes/{sid}/run/stream",
                 body=json.dumps({"code": "print('one', flush=True)\n6 * 7"}).encode(),
                 headers={"Authorization": "Bearer " + node.admin_key, "Content-Type": "application/json"})
    resp = conn.getresponse()
    events = [line.decode().strip()[7:] for line in resp.read().splitlines() if line.startswith(b"event: ")]
    expect(events[0] == "start" and "stdout" in events and "result" in events and events[-1] == "end", events)
    conn.close()
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def bad_context_requests_are_refused(node):
    sid = node.sandbox()
    base = f"/v1/sandboxes/{sid}"
    expect_error(node.request("POST", f"{base}/run", {"code": "1", "context_id": "nosuch"}), 404)
    expect_error(node.request("POST", f"{base}/run", {"code": "1", "context_id": "Bad-Id"}), 404)
    expect_error(node.request("POST", f"{base}/run", {"code": "1", "language": "cobol"}), 400, "language")
    expect_error(node.request("POST", f"{base}/contexts", {"language": "cobol"}), 400, "language")
    expect_error(node.request("POST", f"{base}/contexts", {"language": "python", "cwd": "/nope"}), 400, "cwd")
    expect_error(node.request("POST", f"{base}/contexts/nosuch/restart"), 404)
    expect_error(node.request("DELETE", f"{base}/contexts/nosuch"), 404)
    expect_error(node.request("POST", f"{base}/run", {"code": "x" * (5 << 20)}), 413)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def nothing_is_left_on_the_host(node):
    delete_all_and_expect_nothing_left(node)


def setup():
    return Node(workers=2, threads=32).start()


main(setup, lambda n: n.destroy())
