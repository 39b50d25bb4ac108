"""Drives huggingface_hub (+ hf_xet) against one running hub-server (SQLite + local disk): the same
file uploaded and downloaded through Xet and through Git LFS, then a 2%-edited copy uploaded from a
fresh cache, and prints the figures side by side with what explains them (CPU time, threads, bytes
moved, memory). Each client call is its own process with a fresh HF_HOME (huggingface_hub reads
HF_HOME and HF_HUB_DISABLE_XET at import; a fresh home means empty file and Xet shard caches).

    python xet.py ENDPOINT TOKEN SERVER_PID WORK_DIR SIZE_MIB
"""

import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

endpoint, token, server_pid, work, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
MiB = 1024 * 1024
SIZE = size_mib * MiB
TICK = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- data: 60% random bytes, 40% float32-like (compressible only by BG4 byte grouping) ----


def float_like(n):
    """float32 values in [1, 2): constant exponent byte, a slowly ramping top mantissa byte, random
    low bytes, as in real weights; LZ4 alone finds nothing, BG4 + LZ4 about halves it."""
    buf = bytearray(os.urandom(n))
    ramp = bytes(v for v in range(128) for _ in range(512))
    buf[2::4] = (ramp * (n // 4 // len(ramp) + 1))[: n // 4]
    buf[3::4] = b"\x3f" * (n // 4)
    return buf


def generate(path):
    with open(path, "wb") as f:
        left = SIZE
        while left:
            for block in (os.urandom(min(6 * MiB, left)), float_like(min(4 * MiB, max(0, left - 6 * MiB)))):
                f.write(block)
                left -= len(block)


def edit(src, dst):
    """A copy with 20 regions of 0.1% rewritten (2% of the bytes); the first MiB stays as it is so
    hf_xet's global dedup query for the file's first chunk can hit."""
    subprocess.run(["cp", src, dst], check=True)
    step, length = (SIZE - MiB) // 20, SIZE // 1000
    with open(dst, "r+b") as f:
        for i in range(20):
            f.seek(MiB + i * step + step // 2)
            f.write(os.urandom(length))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


# ---- what the processes do ----


def status_field(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """user + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def io_bytes(pid):
    """Bytes through read()/write()/writev(): storage I/O plus what the process sends on sockets
    (tokio receives with recv(), which /proc/PID/io does not count)."""
    with open(f"/proc/{pid}/io") as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    return int(io["rchar"]), int(io["wchar"])


class Sampler(threading.Thread):
    """Every 50 ms: the server's and the current client's RSS and thread count, kept as maxima."""

    def __init__(self):
        super().__init__(daemon=True)
        self.client = None
        self.reset()

    def reset(self):
        self.server_rss = self.server_threads = self.client_rss = self.client_threads = 0

    def run(self):
        while True:
            self.server_rss = max(self.server_rss, status_field(server_pid, "VmRSS"))
            self.server_threads = max(self.server_threads, status_field(server_pid, "Threads"))
            if self.client:
                self.client_rss = max(self.client_rss, status_field(self.client, "VmRSS"))
                self.client_threads = max(self.client_threads, status_field(self.client, "Threads"))
            time.sleep(0.05)


sampler = Sampler()
sampler.start()
db = sqlite3.connect(os.path.join(work, "hub", "hub.db"))
log = os.path.join(work, "hub.log")


def xorb_bytes():
    return db.execute("SELECT COALESCE(SUM(stored_len), 0) FROM xet_xorbs").fetchone()[0]


def requests_since(mark):
    """(method, path) of the requests the server answered since a log offset."""
    with open(log, "rb") as f:
        f.seek(mark)
        lines = f.read().decode(errors="replace").splitlines()
    seen = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("fields", {}).get("message") == "finished processing request":
            seen.append((rec["span"]["method"], rec["span"]["path"], rec["fields"]["status"]))
    return seen


UPLOAD = """
import json, sys, time
from huggingface_hub import HfApi
a = json.loads(sys.argv[1])
api = HfApi()
api.create_repo(a["repo"], exist_ok=True)
t = time.perf_counter()
api.upload_file(path_or_fileobj=a["src"], path_in_repo="model.bin", repo_id=a["repo"])
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

DOWNLOAD = """
import json, sys, time
from huggingface_hub import hf_hub_download
a = json.loads(sys.argv[1])
t = time.perf_counter()
path = hf_hub_download(a["repo"], "model.bin")
print(json.dumps({"seconds": time.perf_counter() - t, "path": path}))
"""

rows = []


def phase(name, code, xet, **args):
    """Runs one client call in its own process with a fresh HF_HOME and records what it cost."""
    home = os.path.join(work, f"home-{len(rows)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_TOKEN=token,
        HF_HOME=home,
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    say(f"{name}…")
    sampler.reset()
    cpu0, io0, xorbs0, mark = cpu_seconds(server_pid), io_bytes(server_pid), xorb_bytes(), os.path.getsize(log)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], env=env, stdout=subprocess.PIPE, text=True)
    sampler.client = proc.pid
    out, _ = proc.communicate()
    sampler.client = None
    if proc.returncode != 0:
        raise SystemExit(f"{name}: the client failed (exit {proc.returncode})")
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    io1 = io_bytes(server_pid)
    time.sleep(0.2)  # the last request lines reach the log
    result = json.loads(out.strip().splitlines()[-1])
    row = {
        "name": name,
        "seconds": result["seconds"],
        "mb_s": SIZE / 1e6 / result["seconds"],
        "client_cpu": (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
        "server_cpu": cpu_seconds(server_pid) - cpu0,
        "client_threads": sampler.client_threads,
        "server_threads": sampler.server_threads,
        "client_rss": sampler.client_rss / 1024,
        "server_rss": sampler.server_rss / 1024,
        "server_read": (io1[0] - io0[0]) / 1e6,
        "server_wrote": (io1[1] - io0[1]) / 1e6,
        "xorb_mb": (xorb_bytes() - xorbs0) / 1e6,
        "requests": requests_since(mark),
        "path": result.get("path"),
    }
    rows.append(row)
    return row


def head(repo):
    req = urllib.request.Request(
        f"{endpoint}/{repo}/resolve/main/model.bin", method="HEAD", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req) as r:
        return {k.lower(): v for k, v in r.headers.items()}


def count(requests, method, prefix, status=None):
    return sum(1 for m, p, s in requests if m == method and p.startswith(prefix) and status in (None, s))


src, edited = os.path.join(work, "model.bin"), os.path.join(work, "model-edited.bin")
say(f"generating {size_mib} MiB (60% random, 40% float32-like) and a 2%-edited copy…")
generate(src)
edit(src, edited)
want = sha256_file(src)

# LFS first: its batch call would skip bytes the hub already holds in a repo the user can read.
up_lfs = phase("upload via LFS", UPLOAD, False, src=src, repo="bench/lfs")
up_xet = phase("upload via Xet", UPLOAD, True, src=src, repo="bench/xet")
assert "x-xet-hash" in head("bench/xet") and "x-xet-hash" not in head("bench/lfs"), (
    "each repo should hold its file as uploaded"
)
down_xet = phase("download via Xet", DOWNLOAD, True, repo="bench/xet")
down_lfs = phase("download via LFS (/resolve)", DOWNLOAD, False, repo="bench/lfs")
down_mix = phase("download Xet file via /resolve", DOWNLOAD, False, repo="bench/xet")
for row in (down_xet, down_lfs, down_mix):
    assert sha256_file(row["path"]) == want, f"{row['name']}: the downloaded bytes differ"
    os.remove(os.path.realpath(row["path"]))
edit_up = phase("2%-edited copy via Xet", UPLOAD, True, src=edited, repo="bench/edited")
hwm = status_field(server_pid, "VmHWM") / 1024

print()
print(
    f"{size_mib} MiB file (60% random, 40% float32-like); {os.readlink(f'/proc/{server_pid}/exe')} on SQLite + "
    f"local disk; {os.cpu_count()} cores; every client with a fresh HF_HOME"
)
print()
print(f"{'':<16}{'Xet (default)':>16}{'LFS (HF_HUB_DISABLE_XET=1)':>30}")
print(f"{'upload MB/s':<16}{up_xet['mb_s']:>16.1f}{up_lfs['mb_s']:>30.1f}")
print(
    f"{'download MB/s':<16}{down_xet['mb_s']:>16.1f}{down_lfs['mb_s']:>30.1f}"
    f"   (the Xet-stored file over plain /resolve, reassembled by the hub: {down_mix['mb_s']:.1f})"
)
print()
print(
    f"2%-edited copy from a fresh HF_HOME: {edit_up['xorb_mb']:.1f} MB of xorbs sent and stored "
    f"({edit_up['xorb_mb'] * 1e6 / SIZE:.1%} of the file; first upload: {up_xet['xorb_mb']:.1f} MB), "
    f"{count(edit_up['requests'], 'POST', '/xet/v1/xorbs/')} xorb POSTs, "
    f"{count(edit_up['requests'], 'GET', '/xet/v1/chunks/', 200)} of "
    f"{count(edit_up['requests'], 'GET', '/xet/v1/chunks/')} global dedup queries hit, {edit_up['mb_s']:.1f} MB/s"
)
peak = max(r["server_rss"] for r in rows)
print(
    f"hub-server peak RSS: {peak:.1f} MiB sampled every 50 ms, VmHWM {hwm:.1f} MiB "
    f"({'within' if hwm < 150 else 'OVER'} the 150 MiB target)"
)
print()
cols = [
    ("MB/s", "mb_s", ".1f"),
    ("s", "seconds", ".1f"),
    ("cli CPU s", "client_cpu", ".1f"),
    ("srv CPU s", "server_cpu", ".1f"),
    ("cli thr", "client_threads", "d"),
    ("srv thr", "server_threads", "d"),
    ("cli RSS", "client_rss", ".0f"),
    ("srv RSS", "server_rss", ".0f"),
    ("srv rd MB", "server_read", ".0f"),
    ("srv wr MB", "server_wrote", ".0f"),
    ("xorb MB", "xorb_mb", ".1f"),
    ("requests", None, None),
]
print(f"{'phase':<32}" + "".join(f"{c:>10}" for c, _, _ in cols))
for r in rows:
    print(f"{r['name']:<32}" + "".join(f"{r[k]:>10{f}}" for _, k, f in cols if k) + f"{len(r['requests']):>10}")
print()
print("cli/srv CPU s: user+system seconds of the client process (getrusage of the child) and of hub-server")
print("  (/proc/PID/stat) during the phase; thr: most threads seen; RSS: most MiB resident seen (50 ms samples);")
print("  srv rd/wr MB: hub-server's read()/write() bytes (/proc/PID/io rchar/wchar): storage reads and writes plus")
print("  what it sends on sockets; what it receives (recv()) is not counted: an upload brings the file (LFS) or")
print("  the xorb MB (Xet) plus small JSON and shards;")
print("  xorb MB: growth of xet_xorbs.stored_len, i.e. the bytes of the xorbs clients POSTed and the hub kept.")
print("MB/s: file size / the client call's own wall time (upload_file or hf_hub_download, without Python start).")
print("The source file is in the page cache (just written); downloads land in fresh HF_HOMEs on the same disk.")
