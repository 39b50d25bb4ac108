"""The real clients against real `hub-server serve` processes speaking Xet, on SQLite + local disk
and on Postgres + S3 (Garage): huggingface_hub + hf_xet with default settings upload a 100 MiB
file as xorbs, deduplicate a 2%-edited copy through the server's global dedup and an identical
re-upload through their local cache; the file comes back byte for byte through Xet, plain
/resolve (with Range), git + git-lfs and the `hub` CLI; a classic LFS upload still works both ways.

Run by scripts/test with HUB_BIN, HUB_CLI_BIN, HUB_TEST_POSTGRES_URL and the AWS_* /
HUB_TEST_S3_BUCKET variables of the S3 server it started; every one is required."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REQUIRED = [
    "HUB_BIN",
    "HUB_CLI_BIN",
    "HUB_TEST_POSTGRES_URL",
    "HUB_TEST_S3_BUCKET",
    "AWS_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
]
missing = [v for v in REQUIRED if not os.environ.get(v)]
if missing:
    # Both backends always run: a missing service is a broken test setup, never a skip.
    raise RuntimeError(f"the Xet client suite needs {', '.join(missing)} (scripts/test sets them all)")

BIN = os.environ["HUB_BIN"]
CLI = os.environ["HUB_CLI_BIN"]
PG = os.environ["HUB_TEST_POSTGRES_URL"]
BUCKET = os.environ["HUB_TEST_S3_BUCKET"]

MiB = 1024 * 1024
SIZE = 100 * MiB
# hf_xet queries the file's first chunk (up to 128 KiB) for global dedup: leave 1 MiB untouched.
UNTOUCHED_PREFIX = 1 * MiB
EDITS, EDIT_LEN = 20, SIZE // 1000  # 20 regions of 0.1% each: 2% of the bytes change


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


def float_like(n):
    """n bytes of float32 values in [1, 2) whose exponent byte is constant and whose top mantissa
    byte ramps slowly, while the low bytes are random: LZ4 alone finds nothing in the interleaved
    bytes, byte grouping (BG4) then LZ4 shrinks them, as with real weights."""
    buf = bytearray(os.urandom(n))
    ramp = bytes(v for v in range(128) for _ in range(512))
    buf[2::4] = (ramp * (n // 4 // len(ramp) + 1))[: n // 4]
    buf[3::4] = b"\x3f" * (n // 4)
    return buf


class Source:
    def __init__(self, path, random_bytes):
        self.path, self.random_bytes = path, random_bytes
        self.sha256 = sha256_file(path)
        self.size = path.stat().st_size

    def read(self, start, end):
        """Bytes [start, end) of the file."""
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


@pytest.fixture(scope="session")
def original(tmp_path_factory):
    """100 MiB alternating 6 MiB of random bytes and 4 MiB of float-like data (60% / 40%)."""
    path = tmp_path_factory.mktemp("data") / "model.bin"
    random_bytes = 0
    with open(path, "wb") as f:
        for _ in range(SIZE // (10 * MiB)):
            f.write(os.urandom(6 * MiB))
            f.write(float_like(4 * MiB))
            random_bytes += 6 * MiB
    yield Source(path, random_bytes)
    path.unlink()


@pytest.fixture(scope="session")
def edited(original, tmp_path_factory):
    """A copy with 2% of its bytes changed in 20 spread-out regions, the first MiB untouched."""
    path = tmp_path_factory.mktemp("data") / "model-edited.bin"
    data = bytearray(original.path.read_bytes())
    step = (SIZE - UNTOUCHED_PREFIX) // EDITS
    for i in range(EDITS):
        at = UNTOUCHED_PREFIX + i * step + step // 2
        data[at : at + EDIT_LEN] = os.urandom(EDIT_LEN)
    path.write_bytes(data)
    yield Source(path, original.random_bytes)
    path.unlink()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, url=PG):
    out = subprocess.run(
        ["psql", "-qtA", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class Hub:
    """One `hub-server serve` process with user alice; its request log, and SQL on its database."""

    def __init__(self, backend, tmp):
        self.backend, self.tmp = backend, tmp
        self.env = {
            **os.environ,
            "HUB_DATA_DIR": str(tmp / "data"),
            "HUB_LOG_JSON": "true",
            # tower_http's request lines carry method, path and status: the tests read them
            # to tell which protocol a client really used.
            "RUST_LOG": "info,tower_http=debug",
        }
        self.schema = None
        if backend == "postgres-s3":
            self.schema = f"hubxet_{uuid.uuid4().hex}"
            psql(f"CREATE SCHEMA {self.schema}")
            self.db_url = f"{PG}?options=-c%20search_path%3D{self.schema}"
            # A prefix of its own: other hubs and runs share the bucket, and garbage collection must not meet them.
            self.env.update(HUB_DATABASE_URL=self.db_url, HUB_STORAGE_URL=f"s3://{BUCKET}/{self.schema}")
        subprocess.run([BIN, "user", "create", "alice"], env=self.env, check=True, capture_output=True)
        self.token = subprocess.run(
            [BIN, "token", "create", "alice"], env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "hub.log"
        self.log_file = open(self.log, "wb")  # noqa: SIM115 (the server writes to it until stop())
        self.proc = subprocess.Popen(
            [BIN, "serve", "--bind", f"127.0.0.1:{self.port}"],
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"hub-server ({backend}) did not start:\n{self.log.read_text()}")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log_file.close()
        # The stored xorbs and objects (disk backend) are large; the log stays for a look after a failure.
        shutil.rmtree(self.tmp / "data" / "objects", ignore_errors=True)
        if self.schema:
            psql(f"DROP SCHEMA {self.schema} CASCADE")

    def scalar(self, sql):
        if self.schema:
            return int(psql(sql, self.db_url) or 0)
        with sqlite3.connect(self.tmp / "data" / "hub.db") as db:
            return int(db.execute(sql).fetchone()[0] or 0)

    def xorb_bytes(self):
        return self.scalar("SELECT COALESCE(SUM(stored_len), 0) FROM xet_xorbs")

    def xorb_count(self):
        return self.scalar("SELECT COUNT(*) FROM xet_xorbs")

    def log_mark(self):
        return self.log.stat().st_size

    def requests_since(self, mark):
        """(method, path, status) of every request answered since `mark`."""
        time.sleep(0.2)  # the last response line may still be on its way to the file
        with open(self.log, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        seen = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("fields", {}).get("message") == "finished processing request":
                span = rec.get("span", {})
                seen.append((span.get("method"), span.get("path"), rec["fields"].get("status")))
        return seen

    def client_env(self, home, disable_xet=False):
        """A client's environment: this hub, alice's token, its own HF_HOME (cache and Xet shard cache)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "GIT_"))}
        env.update(
            HF_ENDPOINT=self.url,
            HF_TOKEN=self.token,
            HF_HOME=str(home),
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        if disable_xet:
            env["HF_HUB_DISABLE_XET"] = "1"
        return env


@pytest.fixture(scope="module", params=["sqlite-disk", "postgres-s3"])
def hub(request, tmp_path_factory):
    h = Hub(request.param, tmp_path_factory.mktemp(request.param))
    yield h
    h.stop()


# huggingface_hub reads HF_HOME and HF_HUB_DISABLE_XET at import: each client call is its own process.
UPLOAD = """
import json, sys
from huggingface_hub import HfApi
a = json.loads(sys.argv[1])
api = HfApi()
api.create_repo(a["repo"], exist_ok=True)
info = api.upload_file(path_or_fileobj=a["src"], path_in_repo=a["path"], repo_id=a["repo"])
entry = next(iter(api.get_paths_info(a["repo"], [a["path"]], revision=info.oid)))
print(json.dumps({"commit": info.oid, "head": api.model_info(a["repo"]).sha,
                  "lfs": {"sha256": entry.lfs.sha256, "size": entry.lfs.size} if entry.lfs else None,
                  "xet_hash": entry.xet_hash}))
"""

DOWNLOAD = """
import json, sys
from huggingface_hub import hf_hub_download
a = json.loads(sys.argv[1])
print(json.dumps({"path": hf_hub_download(a["repo"], a["path"])}))
"""


def python(code, env, **args):
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"client failed:\n{out.stderr[-4000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def upload(hub, home, src, repo, path, disable_xet=False):
    return python(UPLOAD, hub.client_env(home, disable_xet), src=str(src.path), repo=repo, path=path)


def download(hub, home, repo, path, disable_xet=False):
    return Path(python(DOWNLOAD, hub.client_env(home, disable_xet), repo=repo, path=path)["path"])


def paths(requests, method, prefix):
    return [p for m, p, _ in requests if m == method and p.startswith(prefix)]


class Uploaded:
    def __init__(self, repo, path, result, xorb_growth, xorbs_added, requests):
        self.repo, self.path, self.result = repo, path, result
        self.xorb_growth, self.xorbs_added, self.requests = xorb_growth, xorbs_added, requests


@pytest.fixture(scope="module")
def home_a(hub, tmp_path_factory):
    """The HF_HOME (with hf_xet's local shard cache) of the first upload, reused by the re-upload."""
    return tmp_path_factory.mktemp("home-a")


@pytest.fixture(scope="module")
def uploaded(hub, original, home_a):
    """The 100 MiB file uploaded with huggingface_hub's defaults to alice/xet-a (model.bin)."""
    before_bytes, before_count, mark = hub.xorb_bytes(), hub.xorb_count(), hub.log_mark()
    result = upload(hub, home_a, original, "alice/xet-a", "model.bin")
    return Uploaded(
        "alice/xet-a",
        "model.bin",
        result,
        hub.xorb_bytes() - before_bytes,
        hub.xorb_count() - before_count,
        hub.requests_since(mark),
    )


def test_a_upload_with_default_settings_stores_xorbs(hub, original, uploaded):
    r = uploaded.result
    assert r["head"] == r["commit"], f"main should be at the upload's commit {r['commit']}, is at {r['head']}"
    assert r["lfs"] == {"sha256": original.sha256, "size": SIZE}, (
        f"the commit should hold an LFS pointer to the source, got {r['lfs']}"
    )
    assert r["xet_hash"] and len(r["xet_hash"]) == 64, (
        f"the tree entry should carry the Xet file hash, got {r['xet_hash']!r}"
    )

    xorb_posts = paths(uploaded.requests, "POST", "/xet/v1/xorbs/")
    assert xorb_posts and paths(uploaded.requests, "POST", "/xet/v1/shards"), (
        f"huggingface_hub should have uploaded through Xet; requests: {sorted({(m, p) for m, p, _ in uploaded.requests})}"
    )
    assert not paths(uploaded.requests, "PUT", "/lfs/"), "nothing should go through the LFS upload route"
    posts = [q for q in uploaded.requests if q[0] == "POST" and q[1].startswith(("/xet/v1/xorbs/", "/xet/v1/shards"))]
    assert all(s == 200 for _, _, s in posts), f"every xorb and shard POST should succeed: {posts}"

    print(f"{hub.backend}: {uploaded.xorbs_added} xorbs, {uploaded.xorb_growth} bytes stored for {SIZE}")
    # Xorbs hold at most 64 MiB of raw data: 100 MiB needs at least two.
    assert uploaded.xorbs_added >= 2, f"expected ≥ 2 new xorbs for {SIZE} bytes, got {uploaded.xorbs_added}"
    assert uploaded.xorbs_added == len(set(xorb_posts)), "each POSTed xorb should be recorded once"
    # Random bytes cannot shrink, so all of them are stored; the float-like part shrinks only through
    # byte grouping (BG4: LZ4 alone finds no 4-byte match in it), so under 75% of it means BG4 was used.
    float_bytes = SIZE - original.random_bytes
    assert original.random_bytes < uploaded.xorb_growth < original.random_bytes + 0.75 * float_bytes, (
        f"stored xorb bytes grew by {uploaded.xorb_growth} for a {SIZE}-byte file ({original.random_bytes} random, "
        f"{float_bytes} float-like): expected all the random bytes plus under 75% of the float-like ones"
    )
    held = hub.scalar(
        f"SELECT COUNT(*) FROM repo_objects WHERE oid = '{original.sha256}' AND size = {SIZE} "
        f"AND xet_hash = '{r['xet_hash']}'"
    )
    assert held == 1, "repo_objects should record the upload's sha256 as held by a Xet file"


def test_b_edited_copy_dedups_through_the_server(hub, edited, uploaded, tmp_path):
    # A fresh HF_HOME knows no chunks: only the server's global dedup (GET /v1/chunks) can help.
    before, mark = hub.xorb_bytes(), hub.log_mark()
    r = upload(hub, tmp_path / "home", edited, "alice/xet-b", "model.bin")
    grown = hub.xorb_bytes() - before
    requests = hub.requests_since(mark)
    assert r["head"] == r["commit"] and r["lfs"] == {"sha256": edited.sha256, "size": SIZE}, f"bad commit: {r}"
    hits = [p for m, p, s in requests if m == "GET" and p.startswith("/xet/v1/chunks/") and s == 200]
    assert hits, f"the first chunk's global dedup query should hit: {[q for q in requests if '/chunks/' in q[1]]}"
    print(f"{hub.backend}: the edited copy stored {grown} new xorb bytes, {len(hits)} dedup hits")
    assert grown < 0.10 * SIZE, (
        f"a 2%-edited copy stored {grown} new xorb bytes ({grown / SIZE:.1%} of the file), expected < 10%"
    )
    # The file is now made of xorbs from two uploads: the hub and the client must reassemble it exactly.
    got, status, _ = http_get(hub, "alice/xet-b", "model.bin")
    assert status == 200 and sha256_stream(got) == edited.sha256, "GET /resolve of the edited copy gave different bytes"
    got = download(hub, tmp_path / "home-down", "alice/xet-b", "model.bin")
    assert sha256_file(got) == edited.sha256, "hf_hub_download over Xet of the edited copy gave different bytes"


def test_c_identical_reupload_stores_nothing(hub, original, uploaded, home_a):
    before, mark = hub.xorb_bytes(), hub.log_mark()
    r = upload(hub, home_a, original, "alice/xet-a", "copy/model.bin")
    assert r["head"] == r["commit"] and r["commit"] != uploaded.result["commit"], (
        "the re-upload should make a new commit"
    )
    assert r["lfs"] == {"sha256": original.sha256, "size": SIZE}
    assert r["xet_hash"] == uploaded.result["xet_hash"], "the same bytes should be the same Xet file"
    assert hub.xorb_bytes() == before, f"an identical re-upload stored {hub.xorb_bytes() - before} new xorb bytes"
    requests = hub.requests_since(mark)
    assert not paths(requests, "POST", "/xet/v1/xorbs/"), "every chunk is in the local shard cache: no xorb POST"
    assert paths(requests, "POST", "/xet/v1/shards"), "the client still registers the file with a shard"


def http_get(hub, repo, path, headers=None, method="GET"):
    """(an iterator over the body, status, headers) of /resolve, without following redirects."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=300)
    conn.request(
        method, f"/{repo}/resolve/main/{path}", headers={"Authorization": f"Bearer {hub.token}", **(headers or {})}
    )
    resp = conn.getresponse()

    def body():
        while block := resp.read(MiB):
            yield block
        conn.close()

    return body(), resp.status, {k.lower(): v for k, v in resp.getheaders()}


def sha256_stream(blocks):
    h = hashlib.sha256()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def test_d_head_offers_xet(hub, original, uploaded):
    _, status, h = http_get(hub, uploaded.repo, uploaded.path, method="HEAD")
    assert status == 200, f"HEAD /resolve answered {status}"
    assert h.get("x-xet-hash") == uploaded.result["xet_hash"], f"X-Xet-Hash should name the Xet file: {h}"
    head = json.loads(urllib.request.urlopen(f"{hub.url}/api/models/{uploaded.repo}").read())["sha"]
    assert h.get("x-repo-commit") == head, f"X-Repo-Commit should be main's head {head}: {h}"
    assert h.get("link") == f'<{hub.url}/api/models/{uploaded.repo}/xet-read-token/{head}>; rel="xet-auth"', (
        f"the xet-auth Link should be absolute and name the commit: {h.get('link')}"
    )
    assert h.get("x-linked-size") == str(SIZE) and h.get("x-linked-etag") == f'"{original.sha256}"', (
        f"bad linked headers: {h}"
    )


def test_d_download_through_xet(hub, original, uploaded, tmp_path):
    mark = hub.log_mark()
    got = download(hub, tmp_path / "home", uploaded.repo, uploaded.path)
    assert sha256_file(got) == original.sha256, "hf_hub_download over Xet gave different bytes"
    requests = hub.requests_since(mark)
    resolve = f"/{uploaded.repo}/resolve/main/{uploaded.path}"
    assert paths(requests, "GET", "/xet/v2/reconstructions/") and paths(requests, "GET", "/xet/v1/xorb-ranges/"), (
        f"the download should go through the CAS: {requests}"
    )
    assert not paths(requests, "GET", resolve), "with Xet the file must not also come through GET /resolve"


def test_d_download_without_xet(hub, original, uploaded, tmp_path):
    mark = hub.log_mark()
    got = download(hub, tmp_path / "home", uploaded.repo, uploaded.path, disable_xet=True)
    assert sha256_file(got) == original.sha256, "hf_hub_download with HF_HUB_DISABLE_XET=1 gave different bytes"
    requests = hub.requests_since(mark)
    assert paths(requests, "GET", f"/{uploaded.repo}/resolve/main/{uploaded.path}"), "expected a plain GET /resolve"
    assert not paths(requests, "GET", "/xet/"), "HF_HUB_DISABLE_XET=1 must keep the client off the CAS"


def check_range(hub, original, uploaded, spec, start, end):
    body, status, h = http_get(hub, uploaded.repo, uploaded.path, {"Range": spec})
    data = b"".join(body)
    assert status == 206, f"{spec} answered {status}"
    assert h.get("content-range") == f"bytes {start}-{end}/{SIZE}", f"{spec}: Content-Range {h.get('content-range')}"
    assert len(data) == end - start + 1, f"{spec}: {len(data)} bytes, expected {end - start + 1}"
    assert data == original.read(start, end + 1), f"{spec}: the bytes differ from the source's"


@pytest.mark.parametrize(
    "spec, start, end",
    [
        ("bytes=0-0", 0, 0),  # hf-hub 0.4's probe
        ("bytes=1000-2000000", 1000, 2_000_000),  # mid-chunk to mid-chunk, across ~30 chunks
        ("bytes=-1000", SIZE - 1000, SIZE - 1),
        (f"bytes={SIZE - 10}-{SIZE + 10}", SIZE - 10, SIZE - 1),  # a past-the-end end is clamped (hf-hub 0.4 sends one)
    ],
)
def test_d_range_requests(hub, original, uploaded, spec, start, end):
    check_range(hub, original, uploaded, spec, start, end)


def test_d_range_across_xorbs(hub, original, uploaded):
    # Where the file's first term (its first xorb) ends, as the CAS tells a Xet client.
    auth = {"Authorization": f"Bearer {hub.token}"}
    req = urllib.request.Request(f"{hub.url}/api/models/{uploaded.repo}/xet-read-token/main", headers=auth)
    with urllib.request.urlopen(req) as r:
        cas, token = r.headers["X-Xet-Cas-Url"], r.headers["X-Xet-Access-Token"]
    req = urllib.request.Request(
        f"{cas}/v2/reconstructions/{uploaded.result['xet_hash']}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req) as r:
        terms = json.loads(r.read())["terms"]
    assert len(terms) >= 2, f"a 100 MiB file spans at least two xorbs, the reconstruction has {len(terms)} terms"
    boundary = terms[0]["unpacked_length"]
    check_range(
        hub,
        original,
        uploaded,
        f"bytes={boundary - 100_000}-{boundary + 99_999}",
        boundary - 100_000,
        boundary + 99_999,
    )


def test_d_range_past_the_end_is_416(hub, uploaded):
    body, status, h = http_get(hub, uploaded.repo, uploaded.path, {"Range": f"bytes={SIZE}-"})
    b"".join(body)
    assert status == 416, f"a range starting at the size should answer 416, got {status}"
    assert h.get("content-range") == f"bytes */{SIZE}", f"416 should say the size: {h.get('content-range')}"


def git(args, cwd, env):
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, f"git {' '.join(args)} failed:\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture
def git_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "HF_"))}
    env.update(HOME=str(tmp_path / "home"), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    (tmp_path / "home").mkdir()
    git(["lfs", "install"], tmp_path, env)
    return env


def test_d_git_clone_with_lfs(hub, original, uploaded, tmp_path, git_env):
    url = f"http://alice:{hub.token}@127.0.0.1:{hub.port}/{uploaded.repo}"
    git(["clone", "-q", url, "clone"], tmp_path, git_env)
    assert sha256_file(tmp_path / "clone" / uploaded.path) == original.sha256, (
        "git clone + git-lfs gave different bytes"
    )


def test_d_git_lfs_pull(hub, original, uploaded, tmp_path, git_env):
    url = f"http://alice:{hub.token}@127.0.0.1:{hub.port}/{uploaded.repo}"
    git(["clone", "-q", url, "clone"], tmp_path, {**git_env, "GIT_LFS_SKIP_SMUDGE": "1"})
    pointer = (tmp_path / "clone" / uploaded.path).read_text()
    assert f"oid sha256:{original.sha256}" in pointer, (
        f"a skip-smudge clone should hold the pointer, got {pointer[:200]!r}"
    )
    git(["lfs", "pull"], tmp_path / "clone", git_env)
    assert sha256_file(tmp_path / "clone" / uploaded.path) == original.sha256, "git lfs pull gave different bytes"


def test_d_hub_cli_download(hub, original, uploaded, tmp_path):
    out = subprocess.run(
        [CLI, "download", "-q", uploaded.repo, uploaded.path],
        env=hub.client_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"hub download failed:\n{out.stderr[-4000:]}"
    got = Path(out.stdout.strip().splitlines()[-1])
    assert got.is_relative_to(tmp_path / "home"), f"the file should be in the fresh cache, is at {got}"
    assert sha256_file(got) == original.sha256, "the hub CLI downloaded different bytes"


def test_e_classic_lfs_upload_still_works(hub, tmp_path):
    # A file uploaded with HF_HUB_DISABLE_XET=1 is a plain LFS object: no Xet headers, both paths serve it.
    src = tmp_path / "classic.bin"
    src.write_bytes(os.urandom(3 * MiB) + float_like(2 * MiB))
    classic = Source(src, 3 * MiB)
    before, mark = hub.xorb_bytes(), hub.log_mark()
    r = upload(hub, tmp_path / "home-up", classic, "alice/xet-e", "classic.bin", disable_xet=True)
    assert r["lfs"] == {"sha256": classic.sha256, "size": classic.size} and r["xet_hash"] is None, f"bad commit: {r}"
    requests = hub.requests_since(mark)
    assert paths(requests, "PUT", "/lfs/upload/") and not paths(requests, "POST", "/xet/"), (
        f"HF_HUB_DISABLE_XET=1 should upload through LFS: {requests}"
    )
    assert hub.xorb_bytes() == before, "an LFS upload should store no xorbs"

    _, status, h = http_get(hub, "alice/xet-e", "classic.bin", method="HEAD")
    assert status == 200 and "x-xet-hash" not in h and "link" not in h, (
        f"an LFS object must not be offered over Xet: {h}"
    )
    for disable_xet in (False, True):
        mark = hub.log_mark()
        got = download(hub, tmp_path / f"home-{disable_xet}", "alice/xet-e", "classic.bin", disable_xet)
        assert sha256_file(got) == classic.sha256, f"download (HF_HUB_DISABLE_XET={disable_xet}) gave different bytes"
        assert paths(hub.requests_since(mark), "GET", "/alice/xet-e/resolve/main/classic.bin"), "expected GET /resolve"
