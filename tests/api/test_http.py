"""The HTTP surface through the real nginx: health, routing errors, JSON errors for every
kind of bad input, request ids, HTTPS, and logs that never hold a secret."""
import socket

from harness import Node, expect, expect_error, main, test


@test
def healthz_needs_no_key_and_names_the_node(node):
    r = node.request("GET", "/healthz", key=None)
    expect(r.status == 200, r)
    expect(r.json["status"] == "ok" and r.json["redis"] == "ok", r)
    expect(r.json["node_id"].isalnum() and r.json["node_id"].islower(), r)


@test
def https_serves_the_same_api(node):
    r = node.request("GET", "/v1/usage", https=True)
    expect(r.status == 200 and r.json["name"] == "admin", r)


@test
def every_answer_carries_a_request_id(node):
    ids = set()
    for path in ("/healthz", "/v1/usage", "/v1/nope", "/elsewhere"):
        r = node.request("GET", path)
        expect(len(r.headers.get("x-request-id", "")) >= 16, f"{path}: {r.headers}")
        ids.add(r.headers["x-request-id"])
    expect(len(ids) == 4, "request ids must differ")


@test
def unknown_route_is_json_404(node):
    expect_error(node.request("GET", "/v1/nothing/here"), 404, "no route for GET /v1/nothing/here")
    expect_error(node.request("GET", "/not-api"), 404, "no route")


@test
def wrong_method_is_json_405_with_allow(node):
    r = node.request("PATCH", "/v1/keys")
    expect_error(r, 405, "not allowed")
    expect(r.headers.get("allow") == "POST, GET", r.headers)


@test
def missing_and_unknown_keys_are_401(node):
    expect_error(node.request("GET", "/v1/usage", key=None), 401, "missing API key")
    expect_error(node.request("GET", "/v1/usage", key="wk_unknownunknown"), 401, "unknown or revoked")
    expect_error(node.request("GET", "/v1/usage", key=None, headers={"Authorization": "Basic eDp5"}), 401, "Bearer")


@test
def ten_kilobyte_key_is_a_clear_401(node):
    expect_error(node.request("GET", "/v1/usage", key="k" * 10240), 401, "longer than 128")
    expect_error(node.request("GET", "/v1/usage", key=None, headers={"X-API-Key": "k" * 10240}), 401, "longer than 128")


@test
def oversized_header_is_json_400(node):
    r = node.request("GET", "/v1/usage", headers={"X-Big": "b" * 40000})
    expect_error(r, 400, "larger than 32 KiB")


@test
def malformed_json_is_400_saying_where(node):
    expect_error(node.request("POST", "/v1/keys", raw=b'{"name": "a",'), 400, "invalid JSON at line 1")
    expect_error(node.request("POST", "/v1/keys", raw=b'[1]'), 400, "must be a JSON object")
    expect_error(node.request("POST", "/v1/keys", raw=b''), 400, "empty")


@test
def wrong_types_missing_and_unknown_fields_are_named(node):
    expect_error(node.request("POST", "/v1/keys", {"name": 5}), 400, "field 'name': expected a string, got an integer")
    expect_error(node.request("POST", "/v1/keys", {"rate": 5}), 400, "missing field 'name'")
    expect_error(node.request("POST", "/v1/keys", {"name": "a", "colour": "red"}), 400, "unknown field 'colour'")
    expect_error(node.request("POST", "/v1/keys", {"name": "a", "rate": -1}), 400, "field 'rate': must be from 1")
    expect_error(node.request("POST", "/v1/keys", {"name": "a", "scopes": ["root"]}), 400, "field 'scopes'")
    expect_error(node.request("POST", "/v1/keys", {"name": "a\nb"}), 400, "field 'name'")


@test
def invalid_utf8_and_nul_are_400(node):
    expect_error(node.request("POST", "/v1/keys", raw=b'{"name": "\xff\xfe"}'), 400, "invalid JSON")
    expect_error(node.request("POST", "/v1/keys", raw=b'{"name": "a\\u0000b"}'), 400, "invalid JSON")


@test
def oversized_body_is_413_naming_the_limit(node):
    big = b'{"name": "' + b"a" * (70 * 1024) + b'"}'
    expect_error(node.request("POST", "/v1/keys", raw=big), 413, "limit of 65536 bytes")


@test
def chunked_oversized_body_is_413_too(node):
    # No Content-Length: the limit is enforced while reading.
    s = socket.create_connection(("127.0.0.1", node.http_port))
    head = (f"POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {node.admin_key}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunk = b"a" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    s.sendall(head)
    try:
        s.sendall(body)
    except OSError:
        pass  # the server may answer and close before taking it all
    data = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        data += part
    s.close()
    expect(data.startswith(b"HTTP/1.1 413"), data[:200])
    expect(b"limit of 65536 bytes" in data, data[-300:])


@test
def garbage_request_line_is_json_400(node):
    s = socket.create_connection(("127.0.0.1", node.http_port))
    s.sendall(b"\x16\x03garbage\r\n\r\n")
    data = s.recv(65536)
    s.close()
    expect(data.startswith(b"HTTP/1.1 400"), data[:100])
    expect(b'"error"' in data, data)


@test
def control_characters_in_path_are_400(node):
    expect_error(node.request("GET", "/v1/usage%01x"), 400, "control characters")


@test
def no_secret_reaches_any_log(node):
    k = node.create_key("logcheck")
    node.request("GET", "/v1/usage?token=querysecret", key=k["key"])
    node.request("GET", "/v1/usage", key=k["key"] + "x")
    node.warren("reload")  # flushes nothing secret either
    import time
    time.sleep(1.2)  # nginx's access log flushes every second
    logs = node.log_text()
    expect(node.admin_key not in logs, "admin key found in logs")
    expect(k["key"] not in logs, "created key found in logs")
    expect("querysecret" not in logs, "query string found in logs")
    expect('"path":"/v1/usage"' in logs, "request lines should be logged")


def setup():
    return Node().start()


main(setup, lambda n: n.destroy())
