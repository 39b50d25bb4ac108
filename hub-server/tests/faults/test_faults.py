"""Faults under real `hub-server serve` processes, on a private Postgres cluster and a private
Garage that this suite stops and starts (never the machine's shared ones):

- Garage stopped mid-download and mid-upload: while it is down, routes that need storage answer
  503 with Retry-After promptly, and metadata, git and the web UI keep working; a download in
  flight breaks off (never passes as complete with wrong bytes); an interrupted upload leaves
  nothing visible; once Garage is back, transfers work again without restarting the hub.
- Postgres restarted: while it is down requests fail (503 with Retry-After, promptly); once it is
  back they work again without restarting the hub, and every completed write is readable.
- A replica killed with SIGKILL mid-commit and mid-push (git over smart HTTP): the branch is at
  its old head or the new one, the repository is whole (git fsck), the database agrees with git,
  and the other replica commits to it at once.

Recovery figures (time to first success after the service returns, errors while down) are
printed. Run by scripts/test with HUB_BIN; sizes: HUB_FAULT_SIZE_MIB (64).
"""

import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from hubtest import (MIB, EarlyAnswer, Garage, Hub, Payload, Postgres, base_env, batch, commit, create_repo, file_line,
                     get_sha256, head, header_line, lfs_line, lfs_upload, pg_schema, put_stream, request,
                     user_and_token)

SIZE = int(os.environ.get("HUB_FAULT_SIZE_MIB", "64")) * MIB
# A request while a dependency is down must be answered within this (not hang on retries).
PROMPT_S = 10
# After the dependency returns, the hub must serve again within this, by itself.
RECOVERY_S = 30
# When a replica is killed, as fractions of how long the write takes unkilled.
KILL_AT = (0.05, 0.3, 0.6, 0.85, 0.95, 1.0)


@pytest.fixture(scope="module")
def services():
    root = tempfile.mkdtemp(prefix="hub-faults-")
    pg = Postgres(root).start()
    garage = Garage(root).start()
    try:
        yield pg, garage, root
    finally:
        garage.stop()
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def hub_env(services, storage="s3", data_dir=None):
    pg, garage, root = services
    with pg_schema(pg.url) as database:
        data = data_dir or os.path.join(root, f"data-{uuid.uuid4().hex[:8]}")
        extra = {"HUB_DATABASE_URL": database}
        if storage == "s3":
            extra.update(garage.env(), HUB_STORAGE_URL=f"s3://{garage.bucket}/{uuid.uuid4().hex[:8]}")
        yield base_env(data, **extra)


def probe(method, url, token, **kw):
    """(status, retry-after, seconds) of one request; status is the exception's name on failure."""
    t = time.monotonic()
    try:
        r = request(url, method, token, timeout=PROMPT_S + 20, **kw)
        return r.status, r.header("retry-after"), time.monotonic() - t, r.body[:160]
    except OSError as e:
        return type(e).__name__, None, time.monotonic() - t, b""


def first_success(check, timeout=RECOVERY_S, interval=0.1):
    """Seconds until check() is true (tried every interval), and the failures seen before."""
    t = time.monotonic()
    failures = []
    while time.monotonic() - t < timeout:
        try:
            ok, what = check()
        except Exception as e:  # a refused or broken connection is a failure to count, not a crash
            ok, what = False, type(e).__name__
        if ok:
            return time.monotonic() - t, failures
        failures.append(what)
        time.sleep(interval)
    return None, failures


def summarize(statuses):
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{k}×{v}" for k, v in counts.items()) or "none"


def git(*args, cwd=None, check=True, timeout=120):
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check, capture_output=True, text=True, timeout=timeout)


def remote(hub, token, repo):
    return f"http://alice:{token}@127.0.0.1:{hub.port}/{repo}.git"


# ---- object storage ----------------------------------------------------------------------------

def put_outcome(href, payload, on_sent=None):
    """(status, retry-after, seconds, body) of a streamed PUT. An answer the hub sent before
    the body was through counts only if the client could read it; a connection closed under
    the client is reported as e.g. `BrokenPipeError (answer lost)`."""
    t = time.monotonic()
    try:
        r = put_stream(href, payload, on_sent=on_sent, timeout=PROMPT_S + 50)
        return r.status, r.header("retry-after"), time.monotonic() - t, r.body[:160]
    except EarlyAnswer as e:
        if e.reply is None:
            return f"{type(e.cause).__name__} (answer lost)", None, time.monotonic() - t, b""
        return e.reply.status, e.reply.header("retry-after"), time.monotonic() - t, e.reply.body[:160]
    except OSError as e:
        return type(e).__name__, None, time.monotonic() - t, b""

def while_storage_is_down(hub, token, repo, lfs_file, new_payload):
    """What the hub answers with Garage down: storage routes 503 + Retry-After, the rest works."""
    seen = {}
    seen["resolve LFS file"] = probe("GET", f"{hub.url}/{repo}/resolve/main/{lfs_file}", token)
    r = batch(hub.url, token, repo, "upload", [{"oid": new_payload.oid, "size": new_payload.size}])
    href = r.json()["objects"][0].get("actions", {}).get("upload", {}).get("href") if r.status == 200 else None
    seen["LFS batch (upload)"] = (r.status, r.header("retry-after"), 0.0, r.body[:160])
    if href:
        seen["LFS PUT"] = put_outcome(href, Payload(new_payload.seed, new_payload.size))
    storage = {k: v for k, v in seen.items() if k in ("resolve LFS file", "LFS PUT")}
    working = {
        "health": probe("GET", f"{hub.url}/health", None),
        "repo info": probe("GET", f"{hub.url}/api/models/{repo}", token),
        "tree": probe("GET", f"{hub.url}/api/models/{repo}/tree/main", token),
        "resolve git file": probe("GET", f"{hub.url}/{repo}/resolve/main/README.md", token),
        "web repo page": probe("GET", f"{hub.url}/{repo}", token),
        "web file page": probe("GET", f"{hub.url}/{repo}/blob/main/README.md", token),
        "LFS batch (download)": probe("POST", f"{hub.url}/{repo}.git/info/lfs/objects/batch", token,
                                      body={"operation": "download", "objects": [{"oid": new_payload.oid, "size": 1}]},
                                      content_type="application/vnd.git-lfs+json"),
        "commit (small inline file)": (lambda r: (r.status, r.header("retry-after"), 0.0, r.body[:160]))(
            commit(hub.url, token, repo, [header_line("while S3 is down"), file_line("down.txt", b"written while S3 was down")])),
    }
    t = time.monotonic()
    ls = git("ls-remote", remote(hub, token, repo), "refs/heads/main", check=False, timeout=PROMPT_S + 20)
    working["git ls-remote"] = (0 if ls.returncode == 0 else ls.returncode, None, time.monotonic() - t, ls.stderr[-160:].encode())
    return storage, working, seen.get("LFS batch (upload)")


def check_down_answers(storage, working, hub):
    problems = []
    for what, (status, retry_after, s, body) in storage.items():
        if status != 503 or not retry_after or s > PROMPT_S:
            problems.append(f"{what}: {status} (Retry-After {retry_after!r}) after {s:.1f} s: {body!r}")
    for what, (status, _, s, body) in working.items():
        if status not in (0, 200) or s > PROMPT_S:
            problems.append(f"{what} (needs no storage): {status} after {s:.1f} s: {body!r}")
    if problems:
        problems.append("hub log: " + " | ".join(hub.log_lines("WARN")[-5:] + hub.log_lines("ERROR")[-5:]))
    return problems


def test_storage_stopped_mid_download(services, tmp_path, figures):
    _, garage, _ = services
    with hub_env(services) as env:
        token = user_and_token(env)
        hub = Hub(env, tmp_path / "hub.log").start()
        try:
            repo = create_repo(hub.url, token, "weights")
            payload = Payload(f"{uuid.uuid4()}", SIZE)
            assert lfs_upload(hub.url, token, repo, payload) is None
            assert commit(hub.url, token, repo, [header_line("w"), file_line("README.md", b"# weights\n"),
                                                  lfs_line("w.bin", payload.oid, payload.size)]).status == 200

            # A download in flight: 8 MiB read, then Garage goes away, then the client reads on.
            paused, resume = threading.Event(), threading.Event()

            def slow(n):
                if n >= 8 * MIB and not paused.is_set():
                    paused.set()
                    resume.wait(60)

            outcome = {}

            def download():
                try:
                    status, sha, n, _ = get_sha256(f"{hub.url}/{repo}/resolve/main/w.bin", token, on_read=slow, timeout=60)
                    outcome.update(status=status, intact=(sha == payload.oid and n == payload.size), bytes=n)
                except Exception as e:
                    outcome.update(error=repr(e))

            reader = threading.Thread(target=download)
            reader.start()
            assert paused.wait(60), "the download never started"
            garage.stop()
            down_at = time.monotonic()
            resume.set()
            reader.join(120)

            new = Payload(f"{uuid.uuid4()}", 4 * MIB)
            storage, working, _ = while_storage_is_down(hub, token, repo, "w.bin", new)
            down_for = time.monotonic() - down_at

            garage.start()
            recovered, failures = first_success(lambda: (lambda r: (r.status in (200, 206), r.status))(
                request(f"{hub.url}/{repo}/resolve/main/w.bin", token=token, headers={"Range": "bytes=0-1023"}, timeout=PROMPT_S + 20)))
            status, sha, n, _ = get_sha256(f"{hub.url}/{repo}/resolve/main/w.bin", token)
            upload_after = lfs_upload(hub.url, token, repo, new)

            figures(f"S3 down mid-download: in-flight download -> {outcome}; while down ({down_for:.1f} s): "
                    + "; ".join(f"{k} {v[0]} in {v[2]:.2f} s (Retry-After {v[1]})" for k, v in {**storage, **working}.items())
                    + f"; first success {recovered if recovered is None else round(recovered, 2)} s after Garage returned "
                      f"({len(failures)} failures before: {summarize(failures)})")

            assert "error" in outcome or outcome.get("intact"), f"the interrupted download passed as complete with wrong bytes: {outcome}"
            problems = check_down_answers(storage, working, hub)
            assert recovered is not None, f"the hub did not serve downloads again within {RECOVERY_S} s: {summarize(failures)}"
            assert (status, sha, n) == (200, payload.oid, payload.size), "the object reads back whole after Garage returns"
            assert upload_after is None, f"uploads work again after Garage returns: {upload_after}"
            assert not problems, "while S3 was down:\n" + "\n".join(problems)
        finally:
            hub.kill()
            if garage.proc.poll() is not None:
                garage.start()


def test_storage_stopped_mid_upload(services, tmp_path, figures):
    _, garage, _ = services
    with hub_env(services) as env:
        token = user_and_token(env)
        hub = Hub(env, tmp_path / "hub.log").start()
        try:
            repo = create_repo(hub.url, token, "upload")
            assert commit(hub.url, token, repo, [header_line("readme"), file_line("README.md", b"# up\n")]).status == 200
            payload = Payload(f"{uuid.uuid4()}", SIZE)
            r = batch(hub.url, token, repo, "upload", [{"oid": payload.oid, "size": payload.size}])
            href = r.json()["objects"][0]["actions"]["upload"]["href"]

            def kill_garage(sent):
                if sent >= 16 * MIB and garage.proc.poll() is None:
                    garage.stop()

            status, retry_after, interrupted_s, body = put_outcome(href, payload, on_sent=kill_garage)
            interrupted = (status, body)

            # Nothing of it is visible: the hub still asks for the bytes, verify and commits refuse it,
            # and no download is offered.
            again = batch(hub.url, token, repo, "upload", [{"oid": payload.oid, "size": payload.size}])
            still_wanted = again.status == 200 and "upload" in again.json()["objects"][0].get("actions", {})
            verify = request(f"{hub.url}/{repo}.git/info/lfs/objects/verify", "POST", token,
                             {"oid": payload.oid, "size": payload.size}, "application/vnd.git-lfs+json")
            early = commit(hub.url, token, repo, [header_line("too early"), lfs_line("w.bin", payload.oid, payload.size)])
            offered = batch(hub.url, token, repo, "download", [{"oid": payload.oid, "size": payload.size}])
            offered = offered.status == 200 and "actions" in offered.json()["objects"][0]
            storage, working, _ = while_storage_is_down(hub, token, repo, "README.md", Payload(f"{uuid.uuid4()}", 4 * MIB))
            storage.pop("resolve LFS file")  # README.md is in git: it is checked among the working routes

            garage.start()
            probe_payload = Payload(f"{uuid.uuid4()}", MIB)
            recovered, failures = first_success(lambda: (lambda e: (e is None, e and e[:40]))(
                lfs_upload(hub.url, token, repo, probe_payload)), interval=0.2)
            retried = lfs_upload(hub.url, token, repo, payload)
            landed = commit(hub.url, token, repo, [header_line("weights"), lfs_line("w.bin", payload.oid, payload.size)])
            status, sha, n, _ = get_sha256(f"{hub.url}/{repo}/resolve/main/w.bin", token)

            figures(f"S3 down mid-upload: the interrupted PUT -> {interrupted[0]} after {interrupted_s:.1f} s "
                    f"({interrupted[1][:120]!r}); afterwards batch still asks for the bytes: {still_wanted}, verify "
                    f"{verify.status}, commit naming it {early.status}, download offered: {offered}; while down: "
                    + "; ".join(f"{k} {v[0]} in {v[2]:.2f} s (Retry-After {v[1]})" for k, v in {**storage, **working}.items())
                    + f"; first successful upload {recovered if recovered is None else round(recovered, 2)} s after Garage "
                      f"returned ({len(failures)} failures before: {summarize(failures)})")

            assert interrupted[0] != 200, "an upload whose store went away mid-way must not succeed"
            assert still_wanted and verify.status == 404 and early.status == 400 and not offered, \
                "an interrupted upload must leave nothing visible"
            problems = check_down_answers(storage, working, hub)
            if interrupted[0] != 503 or not retry_after:
                problems.append(f"the interrupted PUT answered {interrupted[0]} (Retry-After {retry_after!r}) "
                                f"{interrupted[1][:160]!r}, not 503 + Retry-After")
            assert recovered is not None, f"uploads did not work again within {RECOVERY_S} s: {summarize(failures)}"
            assert retried is None and landed.status == 200, f"the retried upload: {retried}, commit {landed}"
            assert (status, sha, n) == (200, payload.oid, payload.size)
            assert not problems, "while S3 was down:\n" + "\n".join(problems)
        finally:
            hub.kill()
            if garage.proc.poll() is not None:
                garage.start()


# ---- the database ------------------------------------------------------------------------------

def test_postgres_restarted(services, tmp_path, figures):
    pg, _, _ = services
    with hub_env(services, storage="disk") as env:
        token = user_and_token(env)
        hub = Hub(env, tmp_path / "hub.log").start()
        try:
            repo = create_repo(hub.url, token, "db")
            written = []
            for i in range(3):
                r = commit(hub.url, token, repo, [header_line(f"c{i}"), file_line(f"f{i}.txt", f"file {i}".encode())])
                assert r.status == 200, r
                written.append((f"f{i}.txt", f"file {i}".encode()))

            pg.stop("fast")
            asks = {
                "repo info": ("GET", f"{hub.url}/api/models/{repo}", token, {}),
                "resolve": ("GET", f"{hub.url}/{repo}/resolve/main/f0.txt", token, {}),
                "whoami": ("GET", f"{hub.url}/api/whoami-v2", token, {}),
                "commit": ("POST", f"{hub.url}/api/models/{repo}/commit/main", token, {
                    "body": b'{"key":"header","value":{"summary":"down"}}\n'
                            b'{"key":"file","value":{"path":"down.txt","content":"eA==","encoding":"base64"}}',
                    "content_type": "application/x-ndjson"}),
                "web repo page": ("GET", f"{hub.url}/{repo}", None, {}),
            }
            # At once: each may take as long as the hub's database timeout. /health answers from
            # memory (it never waits for the database), so it can only say what the hub's monitor
            # has seen: it must answer every ask at once and turn 503 within a few seconds.
            def health_turns_503():
                return first_success(lambda: (lambda r: (r.status == 503 and bool(r.header("retry-after")), r.status))(
                    request(f"{hub.url}/health", timeout=1)), timeout=PROMPT_S)

            with concurrent.futures.ThreadPoolExecutor(len(asks) + 1) as pool:
                health_watch = pool.submit(health_turns_503)
                answers = {k: pool.submit(probe, m, u, tok, **kw) for k, (m, u, tok, kw) in asks.items()}
                down = {k: f.result() for k, f in answers.items()}
                health_503_after, health_before = health_watch.result()
            pg.start()
            recovered, failures = first_success(lambda: (lambda r: (r.status == 200, r.status))(
                request(f"{hub.url}/api/models/{repo}", token=token, timeout=PROMPT_S + 20)))
            after = commit(hub.url, token, repo, [header_line("after"), file_line("after.txt", b"after")])
            written.append(("after.txt", b"after"))
            reads = {p: request(f"{hub.url}/{repo}/resolve/main/{p}", token=token) for p, _ in written}

            figures(f"Postgres down: /health 503 after {health_503_after if health_503_after is None else round(health_503_after, 2)} s "
                    f"({summarize(health_before)} before); " + "; ".join(f"{k} {v[0]} in {v[2]:.2f} s (Retry-After {v[1]})" for k, v in down.items())
                    + f"; first success {recovered if recovered is None else round(recovered, 2)} s after Postgres returned "
                      f"({len(failures)} failures before: {summarize(failures)}); commit after: {after.status}")

            problems = [f"{k}: {s} (Retry-After {ra!r}) after {t:.1f} s: {b!r}" for k, (s, ra, t, b) in down.items()
                        if s != 503 or not ra or t > PROMPT_S]
            assert health_503_after is not None, f"/health did not turn 503 within {PROMPT_S} s of Postgres stopping: {summarize(health_before)}"
            assert recovered is not None, f"the hub did not answer again within {RECOVERY_S} s: {summarize(failures)}\n{hub.log_tail()}"
            assert after.status == 200, after
            for p, data in written:
                assert reads[p].status == 200 and reads[p].body == data, f"{p}: {reads[p]}"
            assert not problems, "while Postgres was down:\n" + "\n".join(problems) + "\n" + "\n".join(hub.log_lines("WARN")[-5:])
        finally:
            hub.kill()
            if subprocess.run([f"{pg.bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(pg.port)]).returncode != 0:
                pg.start()


# ---- replicas killed ---------------------------------------------------------------------------

def bare_repos(data_dir):
    """The bare repositories under a data dir (each test's shared dir holds one)."""
    base = os.path.join(data_dir, "repos")
    for prefix in os.listdir(base):
        for name in os.listdir(os.path.join(base, prefix)):
            path = os.path.join(base, prefix, name)
            if os.path.isdir(path):
                yield path


def consistent(data_dir, hub, token, repo, old, new):
    """Problems with the repo after a replica died writing to it (empty when whole)."""
    problems = []
    info = request(f"{hub.url}/api/models/{repo}", token=token)
    sha = info.json().get("sha") if info.status == 200 else None
    if info.status != 200:
        problems.append(f"repo info answers {info}")
    ls = git("ls-remote", remote(hub, token, repo), "refs/heads/main", check=False)
    ref = ls.stdout.split()[0] if ls.returncode == 0 and ls.stdout else None
    if ref != sha:
        problems.append(f"git ref {ref} differs from the API's head {sha}")
    if sha not in (old, new) and new is not None:
        problems.append(f"head {sha} is neither the old {old} nor the new {new}")
    listing = request(f"{hub.url}/api/models?author=alice&full=true&limit=1000", token=token)
    listed = {m["id"]: m.get("sha") for m in listing.json()} if listing.status == 200 else {}
    if listed.get(repo) != sha:
        problems.append(f"the listing (database) says head {listed.get(repo)}, git says {sha}")
    for path in bare_repos(data_dir):
        fsck = git("fsck", "--no-progress", "--connectivity-only", cwd=path, check=False)
        if fsck.returncode != 0:
            problems.append(f"git fsck {path}: {fsck.stderr[-300:]}")
        locks = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".lock")]
        if locks:
            problems.append(f"lock files left behind: {locks}")
    return sha, problems


@contextlib.contextmanager
def replicas(services, tmp_path):
    _, _, root = services
    data = os.path.join(root, f"shared-{uuid.uuid4().hex[:8]}")
    with hub_env(services, data_dir=data) as env:
        token = user_and_token(env)
        b = Hub(env, tmp_path / "replica-b.log").start()
        try:
            yield env, data, token, b
        finally:
            b.kill()


def test_replica_killed_mid_commit(services, tmp_path, figures):
    with replicas(services, tmp_path) as (env, data, token, b):
        repo = create_repo(b.url, token, "killed-commit")
        assert commit(b.url, token, repo, [header_line("first"), file_line("README.md", b"# r\n")]).status == 200
        def files(n):
            return [file_line(f"batch{n}/{j}.bin", os.urandom(48 * 1024)) for j in range(200)]

        # How long such a commit takes here: the kills land at fractions of it, from reading the
        # body to updating the ref and the database.
        a = Hub(env, tmp_path / "replica-a.log").start()
        t = time.monotonic()
        assert commit(a.url, token, repo, [header_line("calibration")] + files("c")).status == 200
        full = time.monotonic() - t
        a.kill()
        rounds = []
        for i, fraction in enumerate(KILL_AT):
            delay = round(full * fraction, 2)
            a = Hub(env, tmp_path / "replica-a.log").start()
            old = head(b.url, token, repo)
            lines = files(i)
            answer = {}

            def send():
                try:
                    r = commit(a.url, token, repo, [header_line(f"killed after {delay}")] + lines, timeout=60)
                    answer.update(status=r.status, oid=r.json().get("commitOid") if r.status == 200 else None)
                except Exception as e:
                    answer.update(error=type(e).__name__)

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(delay)
            a.kill()
            sender.join(60)
            new_oid = answer.get("oid")
            sha, problems = consistent(data, b, token, repo, old, new_oid or "(unknown)")
            if new_oid and sha != new_oid:
                problems.append(f"replica A answered commit {new_oid}, but the head is {sha}")
            if sha != old:
                tree = request(f"{b.url}/api/models/{repo}/tree/main/batch{i}", token=token)
                if tree.status != 200 or len(tree.json()) != len(lines):
                    problems.append(f"the new head holds {len(tree.json()) if tree.status == 200 else tree} of {len(lines)} files")
            took, failures = first_success(lambda: (lambda r: (r.status == 200, r.status))(
                commit(b.url, token, repo, [header_line("after the kill"), file_line("after.txt", os.urandom(8))], timeout=PROMPT_S + 20)))
            if took is None:
                problems.append(f"replica B could not commit within {RECOVERY_S} s: {summarize(failures)}")
            rounds.append((delay, answer, "new" if sha != old else "old", took, problems))
        figures(f"replica killed mid-commit (an unkilled commit takes {full:.2f} s): " + "; ".join(
            f"after {d} s: A -> {ans}, head {which}, B committed after {t if t is None else round(t, 2)} s"
            f"{', PROBLEMS ' + str(p) if p else ''}" for d, ans, which, t, p in rounds))
        bad = [(d, p) for d, _, _, _, p in rounds if p]
        assert not bad, f"inconsistent after a killed commit: {bad}\n{(tmp_path / 'replica-a.log').read_text()[-2000:]}"


def test_replica_killed_mid_push(services, tmp_path, figures):
    with replicas(services, tmp_path) as (env, data, token, b):
        repo = create_repo(b.url, token, "killed-push")
        assert commit(b.url, token, repo, [header_line("first"), file_line("README.md", b"# p\n")]).status == 200
        work = tmp_path / "clone"
        git("clone", "-q", remote(b, token, repo), str(work))
        git("config", "user.email", "alice@example.org", cwd=work)
        git("config", "user.name", "alice", cwd=work)
        def next_commit(name):
            os.makedirs(work / name, exist_ok=True)
            for j in range(1200):
                (work / name / f"{j}.bin").write_bytes(os.urandom(16 * 1024))
            git("add", "-A", cwd=work)
            git("commit", "-q", "-m", name, cwd=work)
            return git("rev-parse", "HEAD", cwd=work).stdout.strip()

        # How long such a push takes here; the kills land at fractions of it.
        a = Hub(env, tmp_path / "replica-a.log").start()
        next_commit("calibration")
        t = time.monotonic()
        git("push", "-q", remote(a, token, repo), "HEAD:main", cwd=work)
        full = time.monotonic() - t
        a.kill()
        rounds = []
        for i, fraction in enumerate(KILL_AT):
            delay = round(full * fraction, 2)
            a = Hub(env, tmp_path / "replica-a.log").start()
            old = head(b.url, token, repo)
            new = next_commit(f"push{i}")
            pushing = subprocess.Popen(["git", "push", "-q", remote(a, token, repo), "HEAD:main"], cwd=work,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
            time.sleep(delay)
            a.kill()
            _, err = pushing.communicate(timeout=120)
            sha, problems = consistent(data, b, token, repo, old, new)
            if pushing.returncode == 0 and sha != new:
                problems.append(f"the push reported success but the head is {sha}")
            # The client pushes again, to the surviving replica.
            t = time.monotonic()
            again = git("push", "-q", remote(b, token, repo), "HEAD:main", cwd=work, check=False)
            took = time.monotonic() - t
            if again.returncode != 0:
                problems.append(f"pushing again through B failed: {again.stderr[-300:]}")
            elif head(b.url, token, repo) != new:
                problems.append("pushing again through B did not move the head")
            # A ref lock git held at the instant of the kill may remain; the next write (the push
            # through B, under the repo lock) must clear it.
            problems = [p for p in problems if not p.startswith("lock files left behind")]
            problems += [p for p in consistent(data, b, token, repo, old, new)[1] if p.startswith("lock files left behind")]
            rounds.append((delay, pushing.returncode, err.strip()[-80:], "new" if sha == new else "old", round(took, 2), problems))
        figures(f"replica killed mid-push (an unkilled push takes {full:.2f} s): " + "; ".join(
            f"after {d} s: push rc {rc} ({e!r}), head {which}, push again via B {t} s{', PROBLEMS ' + str(p) if p else ''}"
            for d, rc, e, which, t, p in rounds))
        bad = [(d, p) for d, _, _, _, _, p in rounds if p]
        assert not bad, f"inconsistent after a killed push: {bad}"


def descendants(pid):
    """The processes below pid (children, their children, …) now, as (pid, command) pairs."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            parents[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for child, (parent, cmd) in parents.items():
            if parent == p:
                found.append((child, cmd))
                frontier.append(child)
    return found


def test_killed_replica_leaves_no_push_running(services, tmp_path, figures):
    """A replica killed while git runs a push for it takes the push with it. Here the push waits
    in its pre-receive hook (a lock held on the table the hook reads) when the replica dies; once
    the lock is released the hook would admit the push, and a receive-pack left running would
    move the ref: outside the repo's lock, after the pusher was told it failed, and without the
    database recording the new head."""
    pg, _, _ = services
    with replicas(services, tmp_path) as (env, data, token, b):
        repo = create_repo(b.url, token, "killed-hook")
        assert commit(b.url, token, repo, [header_line("first"), file_line("README.md", b"# h\n")]).status == 200
        payload = Payload(f"hook-{uuid.uuid4().hex[:8]}", MIB)
        assert lfs_upload(b.url, token, repo, payload) is None
        work = tmp_path / "clone"
        git("clone", "-q", remote(b, token, repo), str(work))
        git("config", "user.email", "alice@example.org", cwd=work)
        git("config", "user.name", "alice", cwd=work)
        (work / "weights.bin").write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{payload.oid}\nsize {payload.size}\n")
        git("add", "weights.bin", cwd=work)
        git("commit", "-q", "-m", "pointer", cwd=work)
        new = git("rev-parse", "HEAD", cwd=work).stdout.strip()
        old = head(b.url, token, repo)

        a = Hub(env, tmp_path / "replica-a.log").start()
        locker = subprocess.Popen(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", env["HUB_DATABASE_URL"]], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pushing = None
        try:
            locker.stdin.write("BEGIN;\nLOCK TABLE repo_objects IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n")
            locker.stdin.flush()
            assert locker.stdout.readline().strip() == "locked"
            pushing = subprocess.Popen(["git", "push", "-q", remote(a, token, repo), "HEAD:main"], cwd=work,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            hook_waits = lambda: subprocess.run(["psql", "-tAX", pg.url, "-c", waiting], capture_output=True,
                                                text=True).stdout.strip() not in ("", "0")
            assert first_success(lambda: (hook_waits(), "not yet"), timeout=60)[0] is not None, pushing.poll()
            running = descendants(a.pid)
            assert any("git-hook" in cmd for _, cmd in running), f"no hook waiting under the replica: {running}"
            a.kill()
            _, err = pushing.communicate(timeout=60)
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            locker.wait(timeout=30)
        finally:
            if pushing and pushing.poll() is None:
                pushing.kill()
            if locker.poll() is None:
                locker.kill()
        # Whatever the dead replica had started ends; the ref stays where it was.
        left = lambda: [(p, cmd) for p, cmd in running if os.path.exists(f"/proc/{p}") and
                        open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip() == cmd]
        gone, _ = first_success(lambda: (not left(), "running"), timeout=30)
        assert gone is not None, f"still running 30 s after the replica died: {left()}"
        time.sleep(2)
        sha, problems = consistent(data, b, token, repo, old, new)
        problems = [p for p in problems if not p.startswith("lock files left behind")]
        figures(f"replica killed while its push waited in the pre-receive hook: push rc {pushing.returncode} "
                f"({err.strip()[-80:]!r}); {len(running)} processes under it, all gone {gone:.2f} s after the "
                f"lock was released; head {'new' if sha == new else 'old' if sha == old else sha}")
        assert pushing.returncode != 0, "the push cannot have succeeded: its replica died before answering"
        assert sha == old, f"the ref moved after the replica that ran the push died: {sha}, problems {problems}"
        assert not problems, problems
        # And the pusher's retry, through the surviving replica, lands.
        assert git("push", "-q", remote(b, token, repo), "HEAD:main", cwd=work, check=False).returncode == 0
        assert head(b.url, token, repo) == new
