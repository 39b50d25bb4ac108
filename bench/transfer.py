"""Drives one LFS upload and download over plain HTTP (the same calls huggingface_hub makes:
batch → PUT → verify → commit, then GET /resolve) and reports throughput and server memory."""

import hashlib
import json
import sys
import time
import urllib.request

endpoint, token, path, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = {"Authorization": f"Bearer {token}"}
CHUNK = 8 * 1024 * 1024


def call(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers={**auth, **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return r.read()


def peak_rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def file_chunks():
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


size = 0
h = hashlib.sha256()
for c in file_chunks():
    h.update(c)
    size += len(c)
oid = h.hexdigest()
mb = size / 1e6

call("POST", f"{endpoint}/api/repos/create", json.dumps({"name": "bench", "organization": None}).encode(),
     {"Content-Type": "application/json"})
batch = json.loads(call("POST", f"{endpoint}/bench/bench.git/info/lfs/objects/batch", json.dumps(
    {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}], "hash_algo": "sha256"}
).encode(), {"Content-Type": "application/vnd.git-lfs+json"}))
href = batch["objects"][0]["actions"]["upload"]["href"]

t0 = time.perf_counter()
req = urllib.request.Request(href, data=file_chunks(), method="PUT", headers={"Content-Length": str(size)})
urllib.request.urlopen(req).read()
up = time.perf_counter() - t0
call("POST", f"{endpoint}/bench/bench.git/info/lfs/objects/verify", json.dumps({"oid": oid, "size": size}).encode(),
     {"Content-Type": "application/json"})
commit = "\n".join(json.dumps(l) for l in [
    {"key": "header", "value": {"summary": "bench"}},
    {"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": oid, "size": size}},
]).encode()
call("POST", f"{endpoint}/api/models/bench/bench/commit/main", commit, {"Content-Type": "application/x-ndjson"})

t0 = time.perf_counter()
got, dh = 0, hashlib.sha256()
with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench/bench/resolve/main/big.bin", headers=auth)) as r:
    while chunk := r.read(CHUNK):
        got += len(chunk)
        dh.update(chunk)
down = time.perf_counter() - t0
assert got == size and dh.hexdigest() == oid, "downloaded bytes differ"

print(f"{mb / up:.1f} {mb / down:.1f} {peak_rss_mib():.1f}")
