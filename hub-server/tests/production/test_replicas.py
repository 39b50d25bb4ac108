"""Two `hub-server serve` replicas on one Postgres database and one S3 bucket (Garage), git data
on a shared directory: they behave as one hub, and a replica killed mid-upload loses nothing
and leaves nothing visible. Run by scripts/test with HUB_BIN, HUB_TEST_POSTGRES_URL and the
AWS_* / HUB_TEST_S3_BUCKET variables of the S3 server it started."""

import concurrent.futures
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest

BIN = os.environ["HUB_BIN"]
PG = os.environ["HUB_TEST_POSTGRES_URL"]
BUCKET = os.environ["HUB_TEST_S3_BUCKET"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG, "-c", sql], check=True, capture_output=True)


class Hub:
    def __init__(self, port, proc):
        self.port, self.proc = port, proc
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def replicas(tmp_path):
    schema = f"hubrep_{uuid.uuid4().hex}"
    psql(f"CREATE SCHEMA {schema}")
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(tmp_path / "shared"),
        "HUB_DATABASE_URL": f"{PG}?options=-c%20search_path%3D{schema}",
        "HUB_STORAGE_URL": f"s3://{BUCKET}/{schema}",
        "RUST_LOG": "warn",
    }
    subprocess.run([BIN, "user", "create", "alice"], env=env, check=True, capture_output=True)
    token = subprocess.run([BIN, "token", "create", "alice"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    hubs = []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen([BIN, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"hub-{port}.log", "wb"))
        hubs.append(Hub(port, proc))
    for hub in hubs:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{hub.url}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"replica on {hub.port} did not start")
    yield hubs, token
    for hub in hubs:
        hub.proc.kill()
        hub.proc.wait()
    psql(f"DROP SCHEMA {schema} CASCADE")


def call(hub, method, path, token, body=None, content_type="application/json"):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(hub.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=600) as r:
        raw = r.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw


def commit(hub, token, repo, lines):
    body = "\n".join(json.dumps(l) for l in lines).encode()
    return call(hub, "POST", f"/api/models/{repo}/commit/main", token, body, "application/x-ndjson")


def test_replicas_behave_as_one_hub(replicas):
    (a, b), token = replicas
    call(a, "POST", "/api/repos/create", token, {"name": "shared", "organization": None})
    repo = "alice/shared"
    oid = commit(a, token, repo, [{"key": "header", "value": {"summary": "via a"}},
                                  {"key": "file", "value": {"path": "a.txt", "content": "YQ==", "encoding": "base64"}}])["commitOid"]
    assert call(b, "GET", f"/api/models/{repo}", token)["sha"] == oid, "a commit through one replica is visible through the other at once"

    def push(i):
        hub = (a, b)[i % 2]
        line = {"key": "file", "value": {"path": f"c/{i}.txt", "content": "eA==", "encoding": "base64"}}
        return commit(hub, token, repo, [{"key": "header", "value": {"summary": f"c{i}"}}, line])["commitOid"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        oids = list(pool.map(push, range(16)))
    assert len(set(oids)) == 16
    files = [e["path"] for e in call(b, "GET", f"/api/models/{repo}/tree/main/c", token)]
    assert sorted(files) == sorted(f"c/{i}.txt" for i in range(16))
    assert len(call(a, "GET", f"/api/models/{repo}/commits/main?limit=100", token)) == 18


SIZE = 1024 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)


def chunks():
    for i in range(SIZE // len(BLOCK)):
        yield i.to_bytes(8, "little") + BLOCK[8:]


def put(url, stop_after=None, on_progress=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}")
    conn.putheader("Content-Length", str(SIZE))
    conn.endheaders()
    sent = 0
    for chunk in chunks():
        conn.send(chunk)
        sent += len(chunk)
        if on_progress and sent >= on_progress[0]:
            on_progress[1]()
            on_progress = None
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_a_replica_killed_mid_upload_leaves_no_trace(replicas):
    (a, b), token = replicas
    call(a, "POST", "/api/repos/create", token, {"name": "big", "organization": None})
    h = hashlib.sha256()
    for c in chunks():
        h.update(c)
    oid = h.hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": SIZE}], "hash_algo": "sha256"}
    obj = call(a, "POST", "/alice/big.git/info/lfs/objects/batch", token, batch, "application/vnd.git-lfs+json")["objects"][0]
    href = obj["actions"]["upload"]["href"]
    assert href.startswith(a.url)

    killed = threading.Event()

    def kill_a():
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed.set()

    with pytest.raises(OSError):
        put(href, on_progress=(256 * 1024 * 1024, kill_a))
    assert killed.is_set()

    # Nothing is visible: the other replica still asks for the whole object, and no commit can name it.
    again = call(b, "POST", "/alice/big.git/info/lfs/objects/batch", token, batch, "application/vnd.git-lfs+json")["objects"][0]
    assert "upload" in again["actions"], "the interrupted upload must not count as stored"
    with pytest.raises(urllib.error.HTTPError) as err:
        commit(b, token, "alice/big", [{"key": "header", "value": {"summary": "too early"}},
                                       {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": SIZE}}])
    assert err.value.code == 400

    # The client's retry against the other replica succeeds (the signed URL is valid on every replica).
    status, body = put(href.replace(a.url, b.url))
    assert status == 200, body
    call(b, "POST", "/alice/big.git/info/lfs/objects/verify", token, {"oid": oid, "size": SIZE})
    commit(b, token, "alice/big", [{"key": "header", "value": {"summary": "weights"}},
                                   {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": SIZE}}])
    got = hashlib.sha256()
    with urllib.request.urlopen(f"{b.url}/alice/big/resolve/main/w.bin", timeout=600) as r:
        while chunk := r.read(1 << 20):
            got.update(chunk)
    assert got.hexdigest() == oid
