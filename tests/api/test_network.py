"""Per-sandbox networks through the real API: each sandbox's own address, what it can and
cannot reach (other sandboxes, the host's services, link-local), spoofing and ARP poisoning
from root inside, egress policy against servers on an outside host of the test's own, and
DNS through the node's forwarder."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

from harness import (Node, OutsideHost, delete_all_and_expect_nothing_left, expect, expect_error, free_port, main,
                     test, wait_until)

OUT_A, OUT_B = OutsideHost.ADDRESSES
PORT = OutsideHost.PORT

# Runs inside a sandbox: tries to connect to each (host, port) and says how it went.
PROBE = textwrap.dedent("""
    import json, socket, sys
    def probe(host, port):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((host, port))
            return "connected"
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return e.strerror
        finally:
            s.close()
    print(json.dumps([probe(h, p) for h, p in json.loads(sys.argv[1])]))
""")


# Runs inside a sandbox: asks the DNS server at argv[1] for argv[2]'s address, by hand.
DNS_QUERY = textwrap.dedent("""
    import json, socket, struct, sys
    name = b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[2].split(".")) + b"\\0"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(struct.pack(">6H", 7, 0x100, 1, 0, 0, 0) + name + struct.pack(">2H", 1, 1), (sys.argv[1], 53))
        print(json.dumps("answered" if s.recv(512)[:2] == b"\\0\\7" else "garbled"))
    except OSError as e:
        print(json.dumps(str(e)))
""")


def py(node, sid, code, *args, user="root"):
    """Runs python code as root inside the sandbox; returns its stdout parsed as JSON."""
    argv = " ".join(f"'{a}'" for a in args)
    r = node.request("POST", f"/v1/sandboxes/{sid}/shell",
                     {"cmd": f"python3 - {argv} <<'EOF'\n{code}\nEOF", "user": user, "timeout_ms": 60000})
    expect(r.status == 200 and r.json["exit_code"] == 0, r)
    return json.loads(r.json["stdout"])


def probe(node, sid, targets):
    return py(node, sid, PROBE, json.dumps(targets))


def new_sandbox(node, **fields):
    r = node.request("POST", "/v1/sandboxes", fields)
    expect(r.status == 201, r)
    return r.json


def host_connects(address, port):
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def host_address():
    """One of the host's own addresses that is neither loopback nor a test network."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith(("10.", "198.51.100.", "203.0.113.")):
            return addr
    return None


@test
def loopback_is_up_and_any_port_is_the_users(ctx):
    """The sandbox's namespace comes ready: lo up, and port 80 bindable by the unprivileged
    user, as on a machine of one's own."""
    node = ctx["node"]
    sid = new_sandbox(node)["id"]
    r = node.shell(sid, "python3 -c \"import socket; s = socket.socket(); s.bind(('0.0.0.0', 80)); s.listen(); "
                        "socket.create_connection(('127.0.0.1', 80)); print('served')\"; id -un")
    expect(r.json["stdout"] == "served\nuser\n", r)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def each_sandbox_has_its_own_address_and_files(ctx):
    node = ctx["node"]
    a, b = new_sandbox(node), new_sandbox(node)
    net_a, net_b = a["network"], b["network"]
    expect(net_a["address"] != net_b["address"], (net_a, net_b))
    expect(net_a["address"].startswith(f"10.{node.subnet_octet}."), net_a)
    expect(net_a["internet"] is True and net_a["allow_out"] == [] and net_a["deny_out"] == [], net_a)
    r = node.shell(a["id"], "ip -4 -o addr show eth0; ip route; cat /etc/resolv.conf /etc/hosts; "
                            "cat /proc/net/if_inet6 | wc -l")
    out = r.json["stdout"]
    expect(net_a["address"] in out and f"default via {node.gateway}" in out, out)
    expect(f"nameserver {node.gateway}" in out and f"{net_a['address']}\t{a['id']}" in out, out)
    expect(out.strip().endswith("0"), f"a sandbox has no IPv6 address: {out}")
    for s in (a, b):
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def sandboxes_do_not_reach_each_other_or_the_host(ctx):
    node, outside = ctx["node"], ctx["outside"]
    a, b = new_sandbox(node), new_sandbox(node)
    b_addr = b["network"]["address"]
    r = node.request("POST", f"/v1/sandboxes/{b['id']}/commands", {"cmd": "python3 -m http.server 8000"})
    expect(r.status == 201, r)
    # B serves: the host reaches it (previews depend on that) ...
    expect(wait_until(lambda: host_connects(b_addr, 8000), timeout=15), "B's server never listened")
    # ... and a listener on every host address, and a Redis on TCP, are there for the host.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    lport = listener.getsockname()[1]
    rport = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "0.0.0.0", "--protected-mode", "no",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        expect(wait_until(lambda: host_connects("127.0.0.1", rport), timeout=10), "test redis did not start")
        me = host_address()
        targets = [[b_addr, 8000], [node.gateway, node.http_port], [node.gateway, node.https_port],
                   [node.gateway, lport], [node.gateway, rport], ["169.254.169.254", 80],
                   [OUT_A, PORT]]
        if me:
            targets += [[me, node.http_port], [me, lport], [me, rport]]
        got = probe(node, a["id"], targets)
        # The outside host is reached (egress works), so every other failure is the policy.
        expect(got[6] == "connected", f"the outside host must be reachable: {got}")
        for target, result in zip(targets, got):
            if target != [OUT_A, PORT]:
                expect(result != "connected", f"sandbox reached {target}: {list(zip(targets, got))}")
        # Refusals are immediate, not timeouts: a user sees an error at once.
        expect(got[0] != "timeout" and got[1] != "timeout", got)
        # The node's own Redis is a unix socket, not in the sandbox's filesystem.
        sock = os.path.join(node.state, "redis", "redis.sock")
        r = node.shell(a["id"], f"test -e {sock} && echo present || echo absent")
        expect(r.json["stdout"].strip() == "absent", r)
    finally:
        redis.kill()
        redis.wait()
        listener.close()
    for s in (a, b):
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")


# Root inside a sandbox holds no capability over its network namespace (the host's user
# namespace owns it), so it cannot open raw or packet sockets at all. Should it ever get
# one, the node's bridge rules still drop what it forges: the test sends, from inside the
# sandbox's network namespace as host root, UDP to the outside host plainly, from another
# sandbox's address (raw IP) and in Ethernet frames with a forged and with its own MAC,
# then an ARP reply that claims the other sandbox's address. Each payload names how it
# was sent; only the plain ones may arrive.
SPOOF = textwrap.dedent("""
    import json, socket, struct, sys, time
    victim_ip, out_ip, port, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(f"genuine-{tag}".encode(), (out_ip, port))
    def csum(b):
        if len(b) % 2: b += b"\\0"
        t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        t = (t >> 16) + (t & 0xffff); t += t >> 16
        return ~t & 0xffff
    def ip_udp(src, dst, payload):
        udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + udp
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip_udp(victim_ip, out_ip, f"spoofed-ip-{tag}".encode()), (out_ip, 0))
    # The gateway's MAC, learnt by the genuine datagram above.
    time.sleep(0.2)
    gw_mac = None
    for line in open("/proc/net/arp").read().splitlines()[1:]:
        f = line.split()
        if f[5] == "eth0" and f[3] != "00:00:00:00:00:00":
            gw_mac = bytes.fromhex(f[3].replace(":", ""))
    import fcntl  # the MAC from the namespace itself (SIOCGIFHWADDR), not from a /sys of elsewhere
    own_mac = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("256s", b"eth0"))[18:24]
    s.connect((out_ip, port))
    own_ip = s.getsockname()[0]
    pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    pkt.bind(("eth0", 0))
    forged = bytes([0x02, 0x99, 0x99, 0x99, 0x99, 0x99])
    pkt.send(gw_mac + forged + b"\\x08\\x00" + ip_udp(own_ip, out_ip, f"forged-mac-{tag}".encode()))
    pkt.send(gw_mac + own_mac + b"\\x08\\x00" + ip_udp(own_ip, out_ip, f"frame-{tag}".encode()))
    # ARP poisoning: tell the gateway the victim's address is at this sandbox's MAC.
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, own_mac, socket.inet_aton(victim_ip),
                      gw_mac, socket.inet_aton(sys.argv[5]))
    for _ in range(3):
        pkt.send(gw_mac + own_mac + b"\\x08\\x06" + arp)
        time.sleep(0.05)
    print(json.dumps({"gw_mac": gw_mac.hex(), "own_mac": own_mac.hex()}))
""")


@test
def root_inside_gets_no_raw_sockets(ctx):
    node = ctx["node"]
    s = new_sandbox(node)
    got = py(node, s["id"], textwrap.dedent("""
        import json, socket
        out = {}
        for name, args in (("raw", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)),
                           ("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0)),
                           ("udp", (socket.AF_INET, socket.SOCK_DGRAM, 0))):
            try:
                socket.socket(*args).close()
                out[name] = "opened"
            except OSError as e:
                out[name] = e.errno
        print(json.dumps(out))
    """))
    # A plain UDP socket opens (the probe works); raw and packet sockets are refused (EPERM).
    # (EPERM from the kernel, or EAFNOSUPPORT from the syscall filter for packet sockets.)
    expect(got["udp"] == "opened" and got["raw"] == 1 and got["packet"] in (1, 97), got)
    node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def spoofing_and_arp_poisoning_are_dropped(ctx):
    node, outside = ctx["node"], ctx["outside"]
    a, b = new_sandbox(node), new_sandbox(node)
    victim = b["network"]["address"]
    host_connects(victim, 1)  # the host learns B's real MAC first
    tag = str(int(time.time() * 1000))
    out = subprocess.run(["nsenter", f"--net=/proc/{node.sandbox_pid(a['id'])}/ns/net", sys.executable, "-c", SPOOF,
                          victim, OUT_A, str(PORT), tag, node.gateway], capture_output=True, text=True, timeout=30)
    expect(out.returncode == 0, out.stderr)
    macs = json.loads(out.stdout)
    expect(wait_until(lambda: any(f"genuine-{tag}" in l for l in outside.udp_received(OUT_A)), timeout=5),
           f"the plain datagram must arrive: {outside.udp_received(OUT_A)}")
    expect(wait_until(lambda: any(f"frame-{tag}" in l for l in outside.udp_received(OUT_A)), timeout=5),
           f"an honest raw frame must arrive (the method works): {outside.udp_received(OUT_A)}")
    time.sleep(0.5)
    got = outside.udp_received(OUT_A)
    expect(not any(f"spoofed-ip-{tag}" in l for l in got), f"a spoofed source address got out: {got}")
    expect(not any(f"forged-mac-{tag}" in l for l in got), f"a forged MAC got out: {got}")
    neigh = subprocess.run(["ip", "neigh", "show", victim, "dev", node.bridge], capture_output=True,
                           text=True).stdout.lower()
    a_mac = ":".join(macs["own_mac"][i:i + 2] for i in range(0, 12, 2))
    expect(a_mac not in neigh, f"the host's neighbour entry for {victim} was poisoned: {neigh}")
    for s in (a, b):
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def egress_policy_on_create_and_changed_while_running(ctx):
    node = ctx["node"]
    targets = [[OUT_A, PORT], [OUT_B, PORT]]
    s = new_sandbox(node)
    sid = s["id"]
    expect(probe(node, sid, targets) == ["connected", "connected"], "default: internet on")
    r = node.request("POST", f"/v1/sandboxes/{sid}/network", {"deny_out": ["198.51.100.0/24"]})
    expect(r.status == 200 and r.json["network"]["deny_out"] == ["198.51.100.0/24"], r)
    got = probe(node, sid, targets)
    expect(got[0] != "connected" and got[1] == "connected", got)
    r = node.request("POST", f"/v1/sandboxes/{sid}/network", {"internet": False, "allow_out": [OUT_B]})
    expect(r.status == 200 and r.json["network"]["internet"] is False, r)
    got = probe(node, sid, targets)
    expect(got[0] != "connected" and got[1] == "connected", got)
    # An allow entry wins over a deny entry that covers it.
    r = node.request("POST", f"/v1/sandboxes/{sid}/network",
                     {"deny_out": ["0.0.0.0/0"], "allow_out": ["198.51.100.0/24"]})
    got = probe(node, sid, targets)
    expect(got[0] == "connected" and got[1] != "connected", got)
    expect(node.request("GET", f"/v1/sandboxes/{sid}").json["network"]["allow_out"] == ["198.51.100.0/24"])
    node.request("DELETE", f"/v1/sandboxes/{sid}")
    # From the start: internet off.
    s = new_sandbox(node, network={"internet": False})
    got = probe(node, s["id"], targets)
    expect(got == [got[0], got[1]] and "connected" not in got, got)
    node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def egress_policy_bad_input(ctx):
    node = ctx["node"]
    bad = [({"network": {"internet": "yes"}}, "internet"),
           ({"network": {"allow_out": "10.0.0.0/8"}}, "allow_out"),
           ({"network": {"deny_out": ["10.0.0.1/8"]}}, "host bits"),
           ({"network": {"deny_out": ["fd00::/8"]}}, "IPv6"),
           ({"network": {"deny_out": ["example"]}}, "deny_out[0]"),
           ({"network": {"deny_out": ["exa_mple.com"]}}, "domain name"),
           ({"network": {"deny_out": ["1.2.3.4/33"]}}, "deny_out[0]"),
           ({"network": {"allow_out": ["1.1.1.1"] * 257}}, "at most"),
           ({"network": {"egress": True}}, "unknown field"),
           ({"network": "off"}, "network")]
    before = len(node.request("GET", "/v1/sandboxes").json["sandboxes"])
    for body, word in bad:
        expect_error(node.request("POST", "/v1/sandboxes", body), 400, word)
    expect(len(node.request("GET", "/v1/sandboxes").json["sandboxes"]) == before, "nothing half-created")
    s = new_sandbox(node)
    expect_error(node.request("POST", f"/v1/sandboxes/{s['id']}/network", {"deny_out": [1]}), 400)
    expect_error(node.request("POST", "/v1/sandboxes/nosuch/network", {"internet": True}), 404)
    node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def dns_through_the_node_forwarder(ctx):
    node = ctx["node"]
    with open(os.path.join(node.state, "dns", "hosts"), "a") as f:
        f.write(f"{OUT_A} outside.warren.test\n")
    with open(os.path.join(node.state, "run", "dnsmasq.pid")) as f:
        os.kill(int(f.read()), 1)  # dnsmasq re-reads its hosts files on SIGHUP
    s = new_sandbox(node)
    r = node.shell(s["id"], f"sleep 0.2; getent hosts outside.warren.test; "
                            f"curl -s -m 5 http://outside.warren.test:{PORT}/")
    expect(r.json["exit_code"] == 0 and f"outside {OUT_A}" in r.json["stdout"], r)
    # The forwarder answers even with internet off: names resolve, connections do not.
    node.request("POST", f"/v1/sandboxes/{s['id']}/network", {"internet": False})
    r = node.shell(s["id"], f"getent hosts outside.warren.test && curl -s -m 3 http://outside.warren.test:{PORT}/")
    expect(OUT_A in r.json["stdout"] and r.json["exit_code"] != 0, r)
    node.request("DELETE", f"/v1/sandboxes/{s['id']}")


@test
def egress_by_domain_name(ctx):
    """A domain in a policy covers the addresses the node's forwarder answers for it and the
    names under it, from the moment the sandbox asks; nothing else."""
    node = ctx["node"]
    s = new_sandbox(node, network={"internet": False, "allow_out": ["Allowed.Warren.Test"]})
    sid = s["id"]
    expect(s["network"]["allow_out"] == ["allowed.warren.test"], s["network"])
    # Not asked for yet: the address is not the domain's as far as the node knows.
    expect(probe(node, sid, [[OUT_A, PORT]]) != ["connected"], "allowed before the name was resolved")
    r = node.shell(sid, f"curl -s -m 5 http://allowed.warren.test:{PORT}/ && "
                        f"curl -s -m 5 http://api.allowed.warren.test:{PORT}/")
    expect(r.json["exit_code"] == 0 and r.json["stdout"].count(f"outside {OUT_A}") == 2, r)
    # Another name at another address stays refused (internet off).
    r = node.shell(sid, f"getent hosts other.warren.test && curl -s -m 5 http://other.warren.test:{PORT}/")
    expect(OUT_B in r.json["stdout"] and r.json["exit_code"] != 0, r)
    # With the internet on, the sandbox may ask a resolver of its own...
    expect(node.request("POST", f"/v1/sandboxes/{sid}/network", {"internet": True}).status == 200)
    got = py(node, sid, DNS_QUERY, OUT_A, "allowed.warren.test")
    expect(got == "answered", f"the outside resolver, asked directly: {got}")
    # ...but not once a name is denied, which holds for what the node's forwarder answers.
    r = node.request("POST", f"/v1/sandboxes/{sid}/network", {"deny_out": ["other.warren.test"]})
    expect(r.status == 200 and r.json["network"]["deny_out"] == ["other.warren.test"], r)
    r = node.shell(sid, f"curl -s -m 5 http://other.warren.test:{PORT}/")
    expect(r.json["exit_code"] != 0, r)
    r = node.shell(sid, f"curl -s -m 5 http://allowed.warren.test:{PORT}/")
    expect(r.json["exit_code"] == 0, r)
    got = py(node, sid, DNS_QUERY, OUT_A, "allowed.warren.test")
    expect(got != "answered", f"a resolver past the node's answered: {got}")
    for bad, word in ((["*.warren.test"], "without"), (["warren"], "domain name"), (["a..b"], "domain name"),
                      (["-a.test"], "domain name"), (["x" * 64 + ".test"], "domain name")):
        expect_error(node.request("POST", f"/v1/sandboxes/{sid}/network", {"allow_out": bad}), 400, word)
    node.request("DELETE", f"/v1/sandboxes/{sid}")


@test
def nothing_is_left_on_the_host(ctx):
    node = ctx["node"]
    delete_all_and_expect_nothing_left(node)
    expect(not node.network_leftovers(), node.network_leftovers())


def setup():
    # The node's forwarder asks the outside host's DNS server, as it would the internet's.
    node = Node(workers=2, threads=32, dns_servers=OUT_A).start()
    outside = OutsideHost()
    outside.start_dns_server({"allowed.warren.test": OUT_A, "api.allowed.warren.test": OUT_A,
                              "other.warren.test": OUT_B})
    return {"node": node, "outside": outside}


def teardown(ctx):
    ctx["outside"].close()
    node = ctx["node"]
    node.destroy()
    # Stopped with no sandbox left, the node removes its bridge and tables.
    expect(not os.path.exists(f"/sys/class/net/{node.bridge}"), "the bridge outlived the node")
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    expect(node.bridge not in out, f"nftables tables outlived the node: {out}")


main(setup, teardown)
