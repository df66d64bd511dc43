"""Per-key rate limits through nginx, across worker processes: the burst is admitted
exactly, the rest get 429 with Retry-After, and the key recovers as tokens refill."""
import time

from harness import Node, expect, expect_error, main, parallel, test


@test
def burst_is_admitted_exactly_across_workers(node):
    k = node.create_key("bursty", rate=1, burst=10)
    statuses = parallel(40, lambda i: node.request("GET", "/v1/usage", key=k["key"]).status)
    ok = statuses.count(200)
    limited = statuses.count(429)
    # One token may refill while the 40 requests are in flight (rate 1/s), never more.
    expect(10 <= ok <= 11 and ok + limited == 40, statuses)


@test
def over_the_rate_is_429_with_retry_after(node):
    k = node.create_key("slow", rate=2, burst=2)
    for _ in range(2):
        expect(node.request("GET", "/v1/usage", key=k["key"]).status == 200)
    r = node.request("GET", "/v1/usage", key=k["key"])
    expect_error(r, 429, "rate limit exceeded")
    expect(r.headers.get("retry-after") in ("1",), r.headers)


@test
def key_recovers_after_waiting(node):
    k = node.create_key("recovering", rate=5, burst=1)
    expect(node.request("GET", "/v1/usage", key=k["key"]).status == 200)
    expect(node.request("GET", "/v1/usage", key=k["key"]).status == 429)
    time.sleep(0.3)  # 5/s refills one token in 200 ms
    expect(node.request("GET", "/v1/usage", key=k["key"]).status == 200)


@test
def one_key_limited_leaves_others_untouched(node):
    a = node.create_key("a", rate=1, burst=1)
    b = node.create_key("b", rate=100, burst=100)
    node.request("GET", "/v1/usage", key=a["key"])
    expect(node.request("GET", "/v1/usage", key=a["key"]).status == 429)
    expect(node.request("GET", "/v1/usage", key=b["key"]).status == 200)


@test
def usage_counts_admitted_requests(node):
    k = node.create_key("counted", rate=100, burst=100)
    for _ in range(5):
        node.request("GET", "/v1/usage", key=k["key"])
    r = node.request("GET", "/v1/usage", key=k["key"])
    expect(r.json["requests"] == 6, r)


def setup():
    return Node(workers=2, threads=32).start()


main(setup, lambda n: n.destroy())
