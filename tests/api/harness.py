"""Test harness for Warren's API tests.

Each test module starts whole nodes the way a user does (`./warren start`, with a private
state directory and free ports), talks to them only through the real nginx over HTTP and
HTTPS, and stops them at the end. A node's logs are checked for sanitizer reports when it
stops, so an ASan+UBSan build fails its tests on any memory or UB error in warrend.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SRC = os.environ.get("WARREN_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("WARREN_BUILD_DIR") or os.path.join(SRC, "build")
def _sanitized_build():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "WARREN_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


# In sanitizer builds the agent keeps warrend's log as its stderr, so reports reach the tests.
SANITIZED = _sanitized_build()
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Node:
    """One Warren node: embedded Redis, warrend and nginx, in a temporary state dir."""

    count = 0  # nodes made by this process: each gets its own bridge and subnet

    def __init__(self, workers=2, threads=32, **conf):
        Node.count += 1
        self.state = tempfile.mkdtemp(prefix="warren-api-")
        self.http_port = free_port()
        self.https_port = free_port()
        # Settings come from this harness only, never from the environment it runs in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
        self.env.update({
            "WARREN_STATE_DIR": self.state,
            "WARREN_HTTP_PORT": str(self.http_port),
            "WARREN_HTTPS_PORT": str(self.https_port),
            "WARREN_BUILD_DIR": BUILD,
            "WARREN_NGINX_WORKERS": "2",
            "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        })
        # Node settings go in the node's warren.conf, as an operator would set them, so a
        # test can change the file and reload.
        self.cgroup_parent = f"warren-api-{self.http_port}"
        # Nodes that exist at once (in this process, or a test and a dev node) must not share
        # a bridge or a subnet.
        self.bridge = f"wt{os.getpid() % 10000:04d}{Node.count % 100:02d}"
        self.subnet_octet = 100 + (os.getpid() + Node.count) % 150
        self.gateway = f"10.{self.subnet_octet}.0.1"
        settings = {"workers": workers, "threads": threads, "drain_timeout_s": 20,
                    "cgroup_parent": self.cgroup_parent, "network_bridge": self.bridge,
                    "network_subnet": f"10.{self.subnet_octet}.0.0/16", **conf}
        with open(os.path.join(SRC, "etc", "warren.conf")) as f:
            text = f.read().replace("@STATE@", self.state)
        text += "\n# set by the test harness\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(os.path.join(self.state, "warren.conf"), "w") as f:
            f.write(text)
        self.admin_key = None

    # --- lifecycle -------------------------------------------------------------------
    def warren(self, *args, check=True, input=None):
        return subprocess.run([os.path.join(SRC, "warren"), *args], env=self.env, check=check,
                              capture_output=True, text=True, input=input, timeout=120)

    started = []  # every node a test started, for cleanup when setup fails

    def start(self):
        Node.started.append(self)
        out = self.warren("start")
        with open(os.path.join(self.state, "admin.key")) as f:
            self.admin_key = f.read().strip()
        assert self.admin_key in out.stdout, "start must print the admin key"
        return self

    def stop(self):
        self.warren("stop", check=False)
        problems = self.sanitizer_reports()
        return problems

    def destroy(self):
        # A node's sandboxes outlive it by design; a test node's must not outlive the test.
        if self.admin_key:
            try:
                for s in self.request("GET", "/v1/sandboxes?limit=100").json["sandboxes"]:
                    self.request("DELETE", f"/v1/sandboxes/{s['id']}")
            except Exception:
                pass
        problems = self.stop()
        self.remove_cgroup_parent()
        # A node stopped with sandboxes left keeps their tmpfs; a test node's goes regardless.
        subprocess.run(["umount", "-l", os.path.join(self.state, "sandboxes")], capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)
        if problems:
            raise AssertionError("sanitizer reports in warrend.log:\n" + problems)

    def print_log_tail(self, lines=30):
        """What the node said last: printed when a test fails, since the node's state (and its
        logs) go with it at the end."""
        for name in ("warrend.log", "nginx-error.log"):
            path = os.path.join(self.state, "logs", name)
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
            print(f"--- last {len(tail)} lines of {name} ---", flush=True)
            print("\n".join(tail), flush=True)

    def remove_cgroup_parent(self):
        for ctrl in ("memory", "pids", "cpu", "cpuacct", "freezer"):
            try:
                os.rmdir(f"/sys/fs/cgroup/{ctrl}/{self.cgroup_parent}")
            except OSError:
                pass

    def sanitizer_reports(self):
        path = os.path.join(self.state, "logs", "warrend.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            text = f.read()
        lines = text.splitlines()
        out = []
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKS):
                out += lines[i:i + 30] + ["..."]  # the report with its stack
        return "\n".join(out[:200])

    def log_text(self):
        out = []
        for name in os.listdir(os.path.join(self.state, "logs")):
            with open(os.path.join(self.state, "logs", name), errors="replace") as f:
                out.append(f.read())
        return "\n".join(out)

    # --- processes ---------------------------------------------------------------------
    def pid(self, which):
        rel = {"warrend": "run/warrend.pid", "redis": "redis/redis.pid", "nginx": "nginx/nginx.pid"}[which]
        with open(os.path.join(self.state, rel)) as f:
            return int(f.read().strip())

    def worker_pids(self):
        """The master's worker processes (its other children are sandboxes' inits)."""
        master = self.pid("warrend")
        try:
            with open(f"/proc/{master}/task/{master}/children") as f:
                children = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return []
        workers = []
        for pid in children:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "warrend-worker":
                        workers.append(pid)
            except OSError:
                pass
        return workers

    def wait_workers(self, n, exclude=(), timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pids = [p for p in self.worker_pids() if p not in exclude]
            if len(pids) >= n:
                return pids
            time.sleep(0.02)
        raise AssertionError(f"workers not back: {self.worker_pids()}; warrend.log ends:\n"
                             + "\n".join(self.log_text().splitlines()[-15:]))

    # --- requests ----------------------------------------------------------------------
    def request(self, method, path, body=None, key="admin", headers=None, https=False, raw=None, timeout=30):
        if https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        hdrs = dict(headers or {})
        if key == "admin":
            key = self.admin_key
        if key:
            hdrs.setdefault("Authorization", "Bearer " + key)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, r.getheaders(), data.decode("utf-8", "replace"))
            resp.data = data  # the body's bytes, for answers that are not text
            return resp
        finally:
            conn.close()

    def sandbox(self, key="admin", **fields):
        r = self.request("POST", "/v1/sandboxes", fields, key=key)
        assert r.status == 201, r
        return r.json["id"]

    def shell(self, sid, cmd, key="admin", **fields):
        return self.request("POST", f"/v1/sandboxes/{sid}/shell", {"cmd": cmd, **fields}, key=key)

    def pooled(self):
        """The warm pool's sandboxes: ids and host pids. They belong on the host while the node
        runs; a stopped node has none."""
        ids, pids = set(), set()
        self.pool_entries = []
        sock = os.path.join(self.state, "redis", "redis.sock")
        if not os.path.exists(sock):
            return ids, pids
        out = subprocess.run(["redis-cli", "-s", sock, "--raw", "EVAL",
                              "local r = {} for _, k in ipairs(redis.call('KEYS', 'pool:*')) do "
                              "for _, e in ipairs(redis.call('LRANGE', k, 0, -1)) do r[#r+1] = e end end "
                              "return r", "0"], capture_output=True, text=True, timeout=10).stdout
        for entry in out.split():
            parts = entry.split(".")
            if len(parts) == 3:
                ids.add(parts[0])
                pids.add(parts[1])
                self.pool_entries.append(entry)
        return ids, pids

    def leftovers(self):
        """What of this node's sandboxes is on the host: directories, cgroups, agent processes
        (the warm pool's excepted)."""
        pool_ids, pool_pids = self.pooled()
        on_host = [x for x in self._on_host() if x.split()[-1].split("/")[-1] not in pool_ids | pool_pids]
        return on_host + self.books_left()

    # Records other than the warm pool's, and every counter that does not match the records:
    # the node's capacity, its uid slots and each key's sandbox quota.
    BOOKS = """
local out, slots, capacity, keys = {}, 0, 0, {}
for _, k in ipairs(redis.call('KEYS', 'sandbox:*')) do
  local f = redis.call('HMGET', k, 'status', 'key_id')
  slots = slots + 1
  if f[1] ~= 'pooled' then out[#out + 1] = 'record ' .. string.sub(k, 9) .. ' ' .. tostring(f[1]) end
  if f[2] and f[2] ~= '' then
    capacity = capacity + 1
    keys[f[2]] = (keys[f[2]] or 0) + 1
  end
end
local have = 0
for _, k in ipairs(redis.call('KEYS', 'node:*:sandboxes')) do have = have + tonumber(redis.call('GET', k)) end
if have ~= capacity then out[#out + 1] = 'capacity ' .. have .. ' for ' .. capacity end
local bits = 0
for _, k in ipairs(redis.call('KEYS', 'node:*:uid_slots')) do bits = bits + redis.call('BITCOUNT', k) end
if bits ~= slots then out[#out + 1] = 'uid_slots ' .. bits .. ' for ' .. slots end
for _, k in ipairs(redis.call('KEYS', 'key:*')) do
  local used = tonumber(redis.call('HGET', k, 'used_sandboxes')) or 0
  local want = keys[string.sub(k, 5)] or 0
  if used ~= want then out[#out + 1] = 'quota ' .. k .. ' ' .. used .. ' for ' .. want end
end
return out
"""

    def books_left(self):
        """What Redis still books for sandboxes that are gone (see BOOKS)."""
        sock = os.path.join(self.state, "redis", "redis.sock")
        if not os.path.exists(sock):
            return []
        out = subprocess.run(["redis-cli", "-s", sock, "--raw", "EVAL", self.BOOKS, "0"],
                             capture_output=True, text=True, timeout=10).stdout
        return [f"books {line}" for line in out.splitlines() if line.strip()]

    def _on_host(self):
        found = []
        sb = os.path.join(self.state, "sandboxes")
        found += [f"dir {d}" for d in os.listdir(sb)] if os.path.isdir(sb) else []
        for ctrl in ("memory", "pids", "cpu", "cpuacct", "freezer"):
            d = f"/sys/fs/cgroup/{ctrl}/{self.cgroup_parent}"
            if os.path.isdir(d):
                found += [f"cgroup {ctrl}/{e}" for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))]
        mine = f"/{self.cgroup_parent}/"
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if not f.read().startswith(b"warren-init"):
                        continue
                with open(f"/proc/{pid}/cgroup") as f:
                    if mine in f.read():
                        found.append(f"process {pid}")
            except OSError:
                pass
        # The tmpfs the sandboxes' directories are on is the node's own, not a sandbox's.
        own = os.path.join(self.state, "sandboxes")
        with open("/proc/mounts") as f:
            found += [f"mount {l.split()[1]}" for l in f if self.state in l and l.split()[1] != own]
        found += self.network_leftovers()
        gen = os.path.join(self.state, "nginx", "generated")
        if os.path.isdir(gen):
            found += [f"snippet {f}" for f in os.listdir(gen) if f != "00-generation.conf"]
        return found

    def network_leftovers(self, pooled_addresses=()):
        """The sandboxes' links, egress entries and chains on the host (the pool's excepted)."""
        found = []
        for link in os.listdir("/sys/class/net"):
            if link.startswith(self.bridge + "v"):
                found.append(f"link {link}")
        out = subprocess.run(["nft", "-j", "list", "table", "inet", self.bridge], capture_output=True, text=True)
        if out.returncode == 0:
            for item in json.loads(out.stdout)["nftables"]:
                if "chain" in item and item["chain"]["name"].startswith("sb_"):
                    found.append(f"chain {item['chain']['name']}")
                if "map" in item and item["map"]["name"] == "egress":
                    for e in item["map"].get("elem", []):
                        found.append(f"egress {e[0]}")
        pooled = self.pooled_network()
        return [f for f in found if f.split()[-1] not in pooled]

    def sandbox_pid(self, sid):
        """The host pid of the sandbox's warren-init, from its record."""
        sock = os.path.join(self.state, "redis", "redis.sock")
        out = subprocess.run(["redis-cli", "-s", sock, "--raw", "HGET", f"sandbox:{sid}", "pid"],
                             capture_output=True, text=True, timeout=10).stdout
        return int(out.strip())

    def pooled_network(self):
        """Names of the warm pool's links, chains and addresses."""
        ids, _ = self.pooled()
        names = set()
        for entry in self.pool_entries:
            sid, _, slot = entry.split(".")
            slot = int(slot)
            names |= {f"sb_{sid}", f"{self.bridge}v{slot:x}",
                      f"10.{self.subnet_octet}.{(slot + 2) >> 8}.{(slot + 2) & 255}"}
        return names

    def create_key(self, name="t", **fields):
        r = self.request("POST", "/v1/keys", {"name": name, **fields})
        assert r.status == 201, r
        return r.json


class OutsideHost:
    """A host outside the node for network tests: a network namespace of the test's own,
    joined to the host by a veth, with addresses in two documentation networks
    (198.51.100.2 and 203.0.113.2) and a server on each (outside_server.py). Sandboxes reach
    it as they would the internet: forwarded and masqueraded by the node."""

    ADDRESSES = ("198.51.100.2", "203.0.113.2")
    GIT_NAME = "git.warren.test"  # the HTTPS git server's name; a node's dns/hosts maps it
    PORT = 8080

    def __init__(self):
        self.name = f"wtx{os.getpid() % 100000}"
        self.dir = tempfile.mkdtemp(prefix="warren-outside-")
        self.servers = []
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("ip", "netns", "add", self.name)
        run("ip", "link", "add", self.name, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        for host_side in ("198.51.100.1/24", "203.0.113.1/24"):
            run("ip", "addr", "add", host_side, "dev", self.name)
        run("ip", "link", "set", self.name, "up")
        inside = ["nsenter", f"--net=/run/netns/{self.name}"]
        for a in self.ADDRESSES:
            run(*inside, "ip", "addr", "add", f"{a}/24", "dev", "eth0")
        run(*inside, "ip", "link", "set", "eth0", "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        run(*inside, "ip", "route", "add", "default", "via", "198.51.100.1")
        for a in self.ADDRESSES:
            self.servers.append(subprocess.Popen(
                [*inside, sys.executable, os.path.join(os.path.dirname(__file__), "outside_server.py"),
                 a, str(self.PORT), self.udp_log(a)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for a in self.ADDRESSES:
            assert wait_until(lambda: self._answers(a), timeout=10), f"outside server {a} did not start"

    def start_dns_server(self, names):
        """A DNS server on the first address, port 53, answering names ({name: address}) and
        refusing the rest: the upstream a node's forwarder asks (its dns_servers)."""
        path = os.path.join(self.dir, "dns.hosts")
        with open(path, "w") as f:
            f.writelines(f"{a} {n}\n" for n, a in names.items())
        inside = ["nsenter", f"--net=/run/netns/{self.name}"]
        self.servers.append(subprocess.Popen(
            [*inside, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--addn-hosts={path}", f"--listen-address={self.ADDRESSES[0]}", "--bind-interfaces",
             "--user=root", f"--pid-file={self.dir}/dnsmasq.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def start_git_servers(self):
        """Git servers on 198.51.100.2: git's smart-HTTP backend behind nginx (fcgiwrap) on
        port 8081 and over HTTPS on 8444 (a certificate from a CA of the test's own, in
        self.ca_pem), /public/ open and /private/ with basic auth (tester / s3cret), and
        `git daemon` on 9418, serving the same two repositories: two commits on main, one
        more on a branch 'feature'. Returns {main, feature, first}: the commit ids."""
        d = self.dir
        run = lambda *a, **kw: subprocess.run(a, check=True, capture_output=True, text=True, **kw)
        work = os.path.join(d, "work")
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        run("git", "init", "-q", "-b", "main", work)
        commits = {}
        for i, (branch, name) in enumerate([("main", "first"), ("main", "main"), ("feature", "feature")]):
            if branch == "feature" and i == 2:
                run("git", "-C", work, "checkout", "-q", "-b", "feature")
            with open(os.path.join(work, f"file{i}.txt"), "w") as f:
                f.write(f"content {i}\n")
            run("git", "-C", work, "add", ".", env=env)
            run("git", "-C", work, "commit", "-q", "-m", f"commit {i}", env=env)
            commits[name] = run("git", "-C", work, "rev-parse", "HEAD").stdout.strip()
        run("git", "-C", work, "checkout", "-q", "main")
        for kind in ("public", "private"):
            os.makedirs(os.path.join(d, "http", kind))
            run("git", "clone", "-q", "--bare", work, os.path.join(d, "http", kind, "repo.git"))
        with open(os.path.join(d, "htpasswd"), "w") as f:
            f.write("tester:" + run("openssl", "passwd", "-apr1", "s3cret").stdout.strip() + "\n")
        os.makedirs(os.path.join(d, "tmp"))
        # HTTPS with a CA of the test's own (a sandbox trusts it once it is in its bundle).
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=warren test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/CN={self.GIT_NAME}", "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.csr")
        with open(f"{d}/san.ext", "w") as f:
            f.write(f"subjectAltName=DNS:{self.GIT_NAME}\n")
        run("openssl", "x509", "-req", "-in", f"{d}/tls.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san.ext", "-out", f"{d}/tls.crt")
        with open(f"{d}/ca.crt") as f:
            self.ca_pem = f.read()
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fcgi;
    uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {self.ADDRESSES[0]}:8081;
        listen {self.ADDRESSES[0]}:8444 ssl;
        ssl_certificate {d}/tls.crt;
        ssl_certificate_key {d}/tls.key;
        location /private/ {{
            auth_basic "git"; auth_basic_user_file {d}/htpasswd;
            include {d}/git.conf;
        }}
        location /public/ {{ include {d}/git.conf; }}
    }}
}}
""")
        with open(os.path.join(d, "git.conf"), "w") as f:
            f.write(f"""
fastcgi_pass unix:{d}/fcgiwrap.sock;
fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
fastcgi_param GIT_PROJECT_ROOT {d}/http;
fastcgi_param GIT_HTTP_EXPORT_ALL "";
fastcgi_param PATH_INFO $uri;
fastcgi_param REMOTE_USER $remote_user;
fastcgi_param QUERY_STRING $query_string;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_TYPE $content_type;
fastcgi_param CONTENT_LENGTH $content_length;
""")
        inside = ["nsenter", f"--net=/run/netns/{self.name}"]
        self.servers.append(subprocess.Popen(["fcgiwrap", "-s", f"unix:{d}/fcgiwrap.sock"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.servers.append(subprocess.Popen([*inside, "nginx", "-c", f"{d}/nginx.conf", "-p", d, "-g", "daemon off;"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.servers.append(subprocess.Popen(
            [*inside, "git", "daemon", "--reuseaddr", f"--base-path={d}/http", "--export-all",
             f"--listen={self.ADDRESSES[0]}", "--port=9418", f"{d}/http"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in (8081, 9418):
            assert wait_until(lambda: self._answers(self.ADDRESSES[0], port), timeout=10), f"git server {port}"
        return commits

    def udp_log(self, address):
        return os.path.join(self.dir, f"udp-{address}.log")

    def udp_received(self, address):
        try:
            with open(self.udp_log(address)) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def _answers(self, address, port=None):
        try:
            with socket.create_connection((address, port or self.PORT), timeout=0.5):
                return True
        except OSError:
            return False

    def close(self):
        for p in self.servers:
            p.terminate()  # nginx's master takes its workers with it
        for p in self.servers:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.path.exists(os.path.join(self.dir, "nginx.pid")):
            subprocess.run(["pkill", "-F", os.path.join(self.dir, "nginx.pid")], capture_output=True)
        subprocess.run(["ip", "link", "del", self.name], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- running tests --------------------------------------------------------------------
_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def wait_until(cond, timeout=10, step=0.05):
    """Polls cond until it holds (True) or the time is up (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def delete_all_and_expect_nothing_left(node):
    """Deletes the admin key's sandboxes and checks the host holds nothing of them."""
    for s in node.request("GET", "/v1/sandboxes?limit=100").json["sandboxes"]:
        node.request("DELETE", f"/v1/sandboxes/{s['id']}")
    expect(wait_until(lambda: not node.leftovers(), timeout=5), node.leftovers())


def expect(cond, msg="expectation failed"):
    if not cond:
        raise AssertionError(msg)


def expect_error(r, status, contains=None):
    """An error answer: the status, a JSON body with an 'error' text, and a request id."""
    expect(r.status == status, f"expected {status}, got {r}")
    expect(isinstance(r.json, dict) and isinstance(r.json.get("error"), str), f"not a JSON error: {r}")
    if contains:
        expect(contains in r.json["error"], f"error should mention {contains!r}: {r}")
    expect("x-request-id" in r.headers, f"no X-Request-Id: {r}")


def parallel(n, fn):
    """Runs fn(i) on n threads at once and returns the results in order."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # a failed request is a result too
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main(setup=None, teardown=None):
    passed = failed = 0
    try:
        ctx = setup() if setup else None
    except Exception:
        # Whatever setup started must not outlive the test (nor keep ctest's pipe open).
        traceback.print_exc()
        for node in list(Node.started):
            try:
                node.destroy()
            except Exception:
                pass
        print("0 passed, 1 failed", flush=True)
        sys.exit(1)
    try:
        for fn in _tests:
            t0 = time.time()
            try:
                fn(ctx) if setup else fn()
                passed += 1
                print(f"ok   {fn.__name__} ({time.time() - t0:.2f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}", flush=True)
                traceback.print_exc()
                for node in Node.started:
                    node.print_log_tail()
    finally:
        if teardown:
            try:
                teardown(ctx)
            except Exception:
                failed += 1
                print("FAIL teardown", flush=True)
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
