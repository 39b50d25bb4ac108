"""Real `hub-server serve` processes and the services under them, for the load and fault suites
(hub-server/tests/load, hub-server/tests/faults). Standard library only.

- Hub: one `hub-server serve` process (HUB_BIN) with a log file; killed at the end.
- Postgres: the test command's server (HUB_TEST_POSTGRES_URL) with a fresh schema, or a private
  cluster this module starts (initdb + pg_ctl, as scripts/lib/services.sh does) that the fault
  suite may stop and restart without touching anyone else's database.
- Garage: the test command's (AWS_* and HUB_TEST_S3_BUCKET, with a fresh prefix), or a private
  one set up by the recipe of scripts/lib/services.sh `start_garage`, which can be stopped and
  started again on the same ports and data.
- Sampler: a separate process (so the client's own threads cannot delay it) that asks /health
  every 100 ms and reads the hub's VmRSS from /proc, and a second one that asks an idle hub's
  /health at the same instants.
"""

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def hub_bin():
    if os.environ.get("HUB_BIN"):
        return os.environ["HUB_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hub-target")
    return os.path.join(target, "debug", "hub-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


# ---- HTTP --------------------------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def request(url, method="GET", token=None, body=None, content_type=None, headers=None, timeout=120):
    """One request on a fresh connection; answers any status (never raises on 4xx/5xx)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", content_type or "application/json")
        elif content_type:
            h["Content-Type"] = content_type
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=h)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# ---- payloads ----------------------------------------------------------------------------------

MIB = 1 << 20
_BLOCK = os.urandom(MIB)


class Payload:
    """`size` bytes made of 1 MiB blocks that differ per (seed, index): distinct content per seed
    without holding it in memory."""

    def __init__(self, seed, size):
        self.seed, self.size = seed, size
        self._oid = None

    def chunks(self):
        left, i = self.size, 0
        while left > 0:
            head = hashlib.sha256(f"{self.seed}/{i}".encode()).digest()
            block = (head + _BLOCK[len(head):])[: min(MIB, left)]
            yield block
            left -= len(block)
            i += 1

    @property
    def oid(self):
        if self._oid is None:
            h = hashlib.sha256()
            for c in self.chunks():
                h.update(c)
            self._oid = h.hexdigest()
        return self._oid


class EarlyAnswer(OSError):
    """The server answered and closed the connection before the request body was sent; `status`
    is what it answered if the client could still read it (else None)."""

    def __init__(self, cause, reply=None):
        super().__init__(f"{type(cause).__name__} while sending; answer read afterwards: {reply}")
        self.cause, self.reply = cause, reply


def put_stream(url, payload, on_sent=None, timeout=300):
    """PUT the payload to a signed URL, streaming; on_sent(bytes_so_far) after each block.
    Answers a Reply; raises EarlyAnswer when the connection breaks while sending (with
    the answer, if it could still be read), OSError when it breaks otherwise."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest("PUT", f"{parts.path}?{parts.query}")
        conn.putheader("Content-Length", str(payload.size))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        sent = 0
        try:
            for chunk in payload.chunks():
                conn.send(chunk)
                sent += len(chunk)
                if on_sent:
                    on_sent(sent)
        except (BrokenPipeError, ConnectionResetError) as e:
            # What a client can still learn: an answer the server sent before closing, if the
            # reset did not discard it.
            try:
                resp = conn.getresponse()
                raise EarlyAnswer(e, Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()))
            except (OSError, http.client.HTTPException) as read_error:
                if isinstance(read_error, EarlyAnswer):
                    raise
                raise EarlyAnswer(e) from read_error
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def get_sha256(url, token=None, on_read=None, timeout=300):
    """GET url, hashing the body as it streams. Answers (status, sha256 hex, bytes, headers);
    raises OSError (or http.client.IncompleteRead) when the body breaks off."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        resp = conn.getresponse()
        h, n = hashlib.sha256(), 0
        while True:
            chunk = resp.read(MIB)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
            if on_read:
                on_read(n)
        length = resp.getheader("content-length")
        if resp.status == 200 and length is not None and int(length) != n:
            raise http.client.IncompleteRead(b"", int(length) - n)
        return resp.status, h.hexdigest(), n, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


# ---- the hub's API -----------------------------------------------------------------------------

def cli(env, *args):
    out = subprocess.run([hub_bin(), *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def user_and_token(env, name="alice"):
    cli(env, "user", "create", name)
    return cli(env, "token", "create", name, "--name", "tests", "--role", "write")


def create_repo(url, token, name):
    r = request(f"{url}/api/repos/create", "POST", token, {"name": name, "organization": None})
    assert r.status == 200, f"create {name}: {r}"
    return f"alice/{name}"


def commit(url, token, repo, lines, timeout=120):
    body = "\n".join(json.dumps(l) for l in lines).encode()
    return request(f"{url}/api/models/{repo}/commit/main", "POST", token, body, "application/x-ndjson", timeout=timeout)


def header_line(summary):
    return {"key": "header", "value": {"summary": summary}}


def file_line(path, data):
    import base64
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def lfs_line(path, oid, size):
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}


def batch(url, token, repo, operation, objects):
    body = {"operation": operation, "transfers": ["basic"], "objects": objects, "hash_algo": "sha256"}
    return request(f"{url}/{repo}.git/info/lfs/objects/batch", "POST", token, body, "application/vnd.git-lfs+json")


def lfs_upload(url, token, repo, payload, on_sent=None):
    """Batch, PUT, verify: Git LFS's basic transfer, as huggingface_hub does it with Xet off.
    Answers None when stored, else a description of what failed."""
    r = batch(url, token, repo, "upload", [{"oid": payload.oid, "size": payload.size}])
    if r.status != 200:
        return f"batch {r.status}: {r.body[:200]!r}"
    obj = r.json()["objects"][0]
    if "error" in obj:
        return f"batch object error {obj['error']}"
    actions = obj.get("actions", {})
    if "upload" in actions:
        try:
            put = put_stream(actions["upload"]["href"], payload, on_sent)
        except OSError as e:
            return f"PUT {e!r}"
        if put.status != 200:
            return f"PUT {put.status}: {put.body[:200]!r}"
    if "verify" in actions:
        v = request(actions["verify"]["href"], "POST", token, {"oid": payload.oid, "size": payload.size},
                    "application/vnd.git-lfs+json")
        if v.status != 200:
            return f"verify {v.status}: {v.body[:200]!r}"
    return None


def head(url, token, repo):
    r = request(f"{url}/api/models/{repo}", token=token)
    assert r.status == 200, f"info {repo}: {r}"
    return r.json()["sha"]


# ---- processes ---------------------------------------------------------------------------------

class Hub:
    """A `hub-server serve` process on a free port."""

    def __init__(self, env, log_path, port=None):
        self.env, self.log_path = env, log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([hub_bin(), "serve", "--bind", f"127.0.0.1:{self.port}"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        log.close()
        try:
            wait_until(lambda: self.proc.poll() is None and request(f"{self.url}/health", timeout=2).status == 200,
                       timeout, f"hub on {self.port} answering /health")
        except RuntimeError:
            raise RuntimeError(f"hub-server did not start:\n{self.log_tail()}")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def log_lines(self, needle):
        try:
            with open(self.log_path, "rb") as f:
                return [l.decode(errors="replace").rstrip() for l in f if needle.encode() in l]
        except OSError:
            return []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Postgres:
    """A private Postgres cluster (Debian's server binaries) that can be stopped and started."""

    def __init__(self, root):
        bins = sorted((d for d in os.listdir("/usr/lib/postgresql")), key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])
        self.bindir = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = os.path.join(root, "postgres")
        os.makedirs(self.dir)
        self.port = free_port()
        self.as_user = []
        if os.getuid() == 0:
            # Postgres refuses to run as root.
            os.chmod(root, 0o755)
            subprocess.run(["chown", "postgres", self.dir], check=True)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self.as_user, f"{self.bindir}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        subprocess.run([*self.as_user, f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w",
                        "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                        "start"], check=True, capture_output=True)
        return self

    def stop(self, mode="fast"):
        subprocess.run([*self.as_user, f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data", "-m", mode, "-w", "stop"],
                       check=False, capture_output=True)


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True)


@contextlib.contextmanager
def pg_schema(admin_url):
    """A fresh schema on admin_url; yields the database URL that uses it."""
    schema = f"hubt_{uuid.uuid4().hex[:16]}"
    psql(admin_url, f"CREATE SCHEMA {schema}")
    try:
        yield f"{admin_url}?options=-c%20search_path%3D{schema}"
    finally:
        try:
            psql(admin_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except subprocess.CalledProcessError:
            pass


def garage_bin():
    return os.environ.get("HUB_GARAGE_BIN") or os.path.join(os.path.expanduser("~"), ".cache", "hub-tools", "bin", "garage")


class Garage:
    """A private Garage, set up by the recipe of scripts/lib/services.sh `start_garage`."""

    def __init__(self, root):
        self.dir = os.path.join(root, "garage")
        os.makedirs(self.dir)
        self.rpc, self.s3, self.admin = free_port(), free_port(), free_port()
        self.conf = os.path.join(self.dir, "garage.toml")
        with open(self.conf, "w") as f:
            f.write(f"""metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{self.rpc}"
rpc_public_addr = "127.0.0.1:{self.rpc}"
rpc_secret = "{os.urandom(32).hex()}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{self.admin}"
admin_token = "{os.urandom(16).hex()}"
""")
        self.proc = None
        self.bucket = "hub"
        self.key_id = self.secret = None

    def g(self, *args, check=True):
        return subprocess.run([garage_bin(), "-c", self.conf, *args], check=check, capture_output=True, text=True)

    def start(self):
        log = open(os.path.join(self.dir, "log"), "ab")
        # Like the test command's Garage: no compression, nice 10 (an S3 service on other machines).
        self.proc = subprocess.Popen(["nice", "-n", "10", garage_bin(), "-c", self.conf, "server"], stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_until(lambda: self.g("status", check=False).returncode == 0, 30, "Garage answering `garage status`", 0.1)
        if self.key_id is None:
            node = self.g("node", "id", "-q").stdout.strip().split("@")[0]
            self.g("layout", "assign", "-z", "dc1", "-c", "1G", node)
            self.g("layout", "apply", "--version", "1")
            self.g("bucket", "create", self.bucket)
            out = self.g("key", "create", "hub-key").stdout
            self.g("bucket", "allow", "--read", "--write", "--owner", self.bucket, "--key", "hub-key")
            for line in out.splitlines():
                if "Key ID" in line:
                    self.key_id = line.split(":", 1)[1].strip()
                if "Secret key" in line:
                    self.secret = line.split(":", 1)[1].strip()
        # S3 answers a little after RPC.
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.s3), timeout=1).close() or True, 30, "Garage S3 port")
        return self

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    def env(self):
        return {"AWS_ENDPOINT": f"http://127.0.0.1:{self.s3}", "AWS_REGION": "garage", "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret}


def shared_s3_env():
    """The test command's Garage (AWS_* and HUB_TEST_S3_BUCKET), or None."""
    keys = ["AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HUB_TEST_S3_BUCKET"]
    if not all(os.environ.get(k) for k in keys):
        return None
    return {k: os.environ[k] for k in [*keys, "AWS_REGION", "AWS_ALLOW_HTTP"] if k in os.environ}


def s3_delete_prefix(s3, bucket, prefix):
    """Deletes every object under `prefix` in the test command's Garage (the load suite writes GiBs
    there per run): ListObjectsV2 + DELETE, signed with SigV4 (stdlib only). Returns the count."""
    import hmac
    import xml.etree.ElementTree as ET
    from urllib.parse import quote

    endpoint = urlsplit(s3["AWS_ENDPOINT"])
    region = s3.get("AWS_REGION", "us-east-1")

    def signed(method, key="", query=None):
        now = time.gmtime()
        amz_date, day = time.strftime("%Y%m%dT%H%M%SZ", now), time.strftime("%Y%m%d", now)
        path = "/" + quote(bucket, safe="") + ("/" + quote(key, safe="/~") if key else "")
        q = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted((query or {}).items()))
        headers = {"host": endpoint.netloc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
        names = ";".join(sorted(headers))
        canonical = "\n".join([method, path, q, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", names, "UNSIGNED-PAYLOAD"])
        scope = f"{day}/{region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + s3["AWS_SECRET_ACCESS_KEY"]).encode()
        for part in (day, region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={s3['AWS_ACCESS_KEY_ID']}/{scope}, "
                                    f"SignedHeaders={names}, Signature={signature}")
        r = request(f"{endpoint.scheme}://{endpoint.netloc}{path}" + (f"?{q}" if q else ""), method, headers=headers)
        if r.status >= 300:
            raise RuntimeError(f"S3 {method} {path}?{q}: {r.status} {r.body[:300]!r}")
        return r

    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    deleted, token = 0, None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        listing = ET.fromstring(signed("GET", query=query).body)
        for key in listing.findall("s3:Contents/s3:Key", ns):
            signed("DELETE", key.text)
            deleted += 1
        token = listing.findtext("s3:NextContinuationToken", None, ns)
        if listing.findtext("s3:IsTruncated", "false", ns) != "true" or not token:
            return deleted


def base_env(data_dir, **extra):
    env = {k: v for k, v in os.environ.items() if not (k.startswith("HUB_") or k.startswith("AWS_"))}
    env.update({"HUB_DATA_DIR": str(data_dir), "RUST_LOG": os.environ.get("HUB_TEST_RUST_LOG", "warn")})
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


# ---- the sampler -------------------------------------------------------------------------------

class Sampler:
    """/health latency and the hub's VmRSS every `interval` s, in a separate Python process.
    With `control_url` (an idle hub on the same machine) a second process asks that one's /health
    at the same pace, so a slow answer can be told apart from a machine too busy to run anything
    promptly."""

    def __init__(self, url, pid, interval=0.1, control_url="-"):
        fd, self.out = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        # The first probe's instant (monotonic, shared by every process): the probers have started
        # by then, and the load begins after it.
        start = time.monotonic() + 0.5
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "sample", url, str(pid), repr(start),
                                      str(interval), self.out, control_url], start_new_session=True)
        time.sleep(max(0.0, start - time.monotonic()))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        with open(self.out) as f:
            result = json.load(f)
        os.unlink(self.out)
        return result


def _runqueue_wait_ns():
    """Nanoseconds this thread has spent runnable but waiting for a CPU (schedstat's second
    field); None where the kernel does not say."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


class _Probe:
    """GET /health over one kept-alive connection, as a load balancer's health check does: the time
    is the hub's answer, not a new TCP handshake (on a 2-core machine saturated by the load's own
    clients and Garage, loopback SYNs are dropped and retried after 1 s; an idle hub shows that too).
    A broken connection is opened again and that request counts with its handshake.

    Each answer's time comes with the part of it that this thread itself spent waiting for a CPU
    after the answer had arrived (or before the request went out): on a 2-core machine under load
    the prober waited up to 88 ms in the run queue (perf sched), which is the measuring side's delay,
    not the hub's. The process probes from one thread, so no lock (the GIL) hides such a wait."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.host, self.port, self.conn = parts.hostname, parts.port, None

    def get(self):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                self.conn.request("GET", "/health")
                r = self.conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def timed(self):
        """(status or exception, ms, ms of it this thread waited for a CPU)."""
        wait0, t = _runqueue_wait_ns(), time.monotonic()
        try:
            status = self.get()
        except (OSError, http.client.HTTPException) as e:
            status = e
        ms, wait1 = (time.monotonic() - t) * 1000, _runqueue_wait_ns()
        waited = (wait1 - wait0) / 1e6 if wait0 is not None and wait1 is not None else 0.0
        return status, ms, min(waited, ms)


def _on_schedule(url, start, interval, stop, each):
    """Asks `url`'s /health at start + k * interval (monotonic clock, shared by every process on
    the machine) until `stop`, calling each(k, status or exception, ms, own wait ms). A probe that
    overruns skips the slots it missed, so slot k is the same instant in every prober."""
    probe = _Probe(url)
    while not stop.is_set():
        k = max(0, -int((start - time.monotonic()) // interval))
        if stop.wait(max(0.0, start + k * interval - time.monotonic())):
            break
        each(k, *probe.timed())


def _control(url, start, interval, out):
    """The idle control hub's /health on the same slots as the hub's, from a process of its own
    (see _sample): {slot: ms of the answer less this prober's own wait}."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lat = {}

    def each(k, status, ms, waited):
        if status == 200:
            lat[k] = ms - waited

    _on_schedule(url, start, interval, stop, each)
    with open(out, "w") as f:
        json.dump(lat, f)


def _sample(url, pid, start, interval, out, control_url):
    """Every `interval`: GET /health of the hub, and its VmRSS.

    The hub's figure for a probe is its answer's time less (a) what this prober itself waited for
    a CPU meanwhile (see _Probe) and (b) what an idle hub on the same machine took at the same
    instant (asked by a second process on the same slots, its own wait also taken out): a stall of
    the whole machine (another tenant of the VM's host, memory reclaim) delays both, and is not
    the hub's. What is left holds the hub's own delays, its threads' waits for a CPU included."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    control_proc = control_out = None
    if control_url != "-":
        control_out = out + ".control"
        control_proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "control", control_url,
                                         repr(start), str(interval), control_out], start_new_session=True)
    lat, failures, rss_max = [], [], 0

    def each(k, status, ms, waited):
        nonlocal rss_max
        at = round(k * interval, 2)
        if isinstance(status, Exception):
            failures.append((at, repr(status)))
        else:
            lat.append((k, at, round(ms, 1), round(ms - waited, 1), round(waited, 1)))
            if status != 200:
                failures.append((at, status))
        try:
            rss_max = max(rss_max, rss_kib(pid))
        except OSError:
            pass

    _on_schedule(url, start, interval, stop, each)
    control = {}
    if control_proc:
        control_proc.send_signal(signal.SIGTERM)
        control_proc.wait(timeout=30)
        with open(control_out) as f:
            control = {int(k): ms for k, ms in json.load(f).items()}
        os.unlink(control_out)
    # (s into the run, ms, hub's ms, prober's wait ms, idle hub's ms at the same instant)
    rows = [(at, ms, round(max(0.0, own - control.get(k, 0.0)), 1), waited, round(control.get(k, 0.0), 1))
            for k, at, ms, own, waited in lat]
    ms = [r[1] for r in rows]
    with open(out, "w") as f:
        json.dump({"samples": len(rows), "health_max_ms": max(ms, default=0.0),
                   "health_p50_ms": sorted(ms)[len(ms) // 2] if ms else 0.0,
                   "health_hub_max_ms": max((r[2] for r in rows), default=0.0),
                   "health_hub_ms": [r[2] for r in rows],
                   "prober_wait_max_ms": max((r[3] for r in rows), default=0.0),
                   "health_worst": sorted(rows, key=lambda r: -r[2])[:5],
                   "health_failures": failures[:20], "health_failure_count": len(failures),
                   "rss_max_mib": round(rss_max / 1024, 1),
                   "control_samples": len(control),
                   "control_max_ms": round(max(control.values(), default=0.0), 1),
                   "control_p50_ms": round(sorted(control.values())[len(control) // 2], 1) if control else 0.0}, f)


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "sample":
    _sample(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7])
elif __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "control":
    _control(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
