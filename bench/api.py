"""bench/api's helper: `setup` makes the benchmark repo on a running hub and saves the hub's
answers as files for nginx; `measure` runs hey against both and prints them side by side, with
the CPU time each server used per request and its thread count, so a ratio can be explained."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request

REPO = "bench/tiny"
CONFIG = json.dumps({"architectures": ["BertModel"], "hidden_size": 32, "model_type": "bert",
                     "num_attention_heads": 4, "num_hidden_layers": 2}, indent=2).encode()
README = b"---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: feature-extraction\ntags:\n- bench\n---\n# tiny\n"


def safetensors_bytes():
    header = json.dumps({"w": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 64 * 64 * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + os.urandom(64 * 64 * 4)


def call(method, url, token=None, body=None, headers=None):
    h = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    with urllib.request.urlopen(req) as r:
        return r.read(), dict(r.headers)


def setup(endpoint, token, www):
    call("POST", f"{endpoint}/api/repos/create", token, json.dumps({"name": "tiny"}).encode(),
         {"Content-Type": "application/json"})
    st = safetensors_bytes()
    oid = hashlib.sha256(st).hexdigest()
    batch, _ = call("POST", f"{endpoint}/{REPO}.git/info/lfs/objects/batch", token, json.dumps(
        {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(st)}]}).encode(),
        {"Content-Type": "application/vnd.git-lfs+json"})
    call("PUT", json.loads(batch)["objects"][0]["actions"]["upload"]["href"], None, st)
    lines = [
        {"key": "header", "value": {"summary": "bench"}},
        {"key": "file", "value": {"path": "config.json", "content": base64.b64encode(CONFIG).decode(), "encoding": "base64"}},
        {"key": "file", "value": {"path": "README.md", "content": base64.b64encode(README).decode(), "encoding": "base64"}},
        {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid, "size": len(st)}},
    ]
    call("POST", f"{endpoint}/api/models/{REPO}/commit/main", token, "\n".join(map(json.dumps, lines)).encode(),
         {"Content-Type": "application/x-ndjson"})
    # nginx serves what the hub answered, byte for byte.
    info, _ = call("GET", f"{endpoint}/api/models/{REPO}")
    os.makedirs(f"{www}/api/models/bench", exist_ok=True)
    os.makedirs(f"{www}/{REPO}/resolve/main", exist_ok=True)
    with open(f"{www}/api/models/{REPO}", "wb") as f:
        f.write(info)
    config, _ = call("GET", f"{endpoint}/{REPO}/resolve/main/config.json")
    assert config == CONFIG
    with open(f"{www}/{REPO}/resolve/main/config.json", "wb") as f:
        f.write(config)
    got, _ = call("GET", f"{endpoint}/{REPO}/resolve/main/model.safetensors")
    assert got == st
    with open(f"{www}/{REPO}/resolve/main/model.safetensors", "wb") as f:
        f.write(st)


def cpu_seconds(pids):
    """utime + stime of the processes (nginx: the master's workers), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def threads(pids):
    n = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            n += int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))
    return n


def nginx_pids(master):
    children = open(f"/proc/{master}/task/{master}/children").read().split()
    return [master, *map(int, children)]


def hey(url, method, token, seconds, conns):
    args = ["hey", "-z", f"{seconds}s", "-c", str(conns), "-m", method]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    return rps, codes, float(p99.group(1)) * 1000 if p99 else float("nan")


def measure(endpoint, token, nginx, hub_pid, nginx_master, seconds, conns):
    seconds, conns = int(seconds), int(conns)
    hub = [int(hub_pid)]
    ng = nginx_pids(int(nginx_master))
    cases = [
        ("model_info", "GET", f"/api/models/{REPO}"),
        ("resolve config.json", "GET", f"/{REPO}/resolve/main/config.json"),
        ("HEAD resolve LFS file", "HEAD", f"/{REPO}/resolve/main/model.safetensors"),
    ]
    # Warm both (the hub's per-commit caches, nginx's open files) before measuring.
    for _, method, path in cases:
        hey(endpoint + path, method, None, 1, conns)
        hey(nginx + path, method, None, 1, conns)
    rounds = 3
    print(f"\nhey -c {conns}, {rounds} rounds of {seconds} s per row, hub and nginx alternating, medians; "
          f"{os.cpu_count()} CPUs; hub: release build, SQLite + local disk")
    print(f"{'request':<34}{'hub req/s':>11}{'nginx req/s':>13}{'ratio':>8}{'hub p99 ms':>12}"
          f"{'hub CPU ms/req':>16}{'nginx CPU ms/req':>18}")
    ratios = []
    for label, method, path in cases:
        for auth in (None, token):
            name = f"{label}{' (token)' if auth else ''}"
            hub_runs, ng_runs = [], []
            for _ in range(rounds):
                c0 = cpu_seconds(hub)
                rps, codes, p99 = hey(endpoint + path, method, auth, seconds, conns)
                hub_runs.append((rps, p99, (cpu_seconds(hub) - c0) * 1000 / max(1, rps * seconds), codes))
                c0 = cpu_seconds(ng)
                nrps, ncodes, _ = hey(nginx + path, method, None, seconds, conns)
                ng_runs.append((nrps, (cpu_seconds(ng) - c0) * 1000 / max(1, nrps * seconds)))
                if set(ncodes) - {"200"}:
                    sys.exit(f"nginx answered {ncodes} for {path}: the comparison would be meaningless")
            rps, p99, hub_cpu, codes = sorted(hub_runs, key=lambda r: r[0])[rounds // 2]
            nrps, ng_cpu = sorted(ng_runs)[rounds // 2]
            bad = {k: v for k, v in codes.items() if k != "200"}
            ratios.append(rps / nrps)
            print(f"{name:<34}{rps:>11.0f}{nrps:>13.0f}{rps / nrps:>7.2f}x{p99:>12.1f}{hub_cpu:>16.3f}{ng_cpu:>18.3f}"
                  + (f"  non-200: {bad}" if bad else ""))
    print(f"\nthreads: hub {threads(hub)}, nginx {threads(ng)} ({len(ng) - 1} workers); hey runs on the same CPUs as both")
    print(f"lowest ratio: {min(ratios):.2f}x (target >= 0.5x nginx)")


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(*sys.argv[2:5])
    else:
        measure(*sys.argv[2:9])
