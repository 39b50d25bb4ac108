"""The worker's own limits, on a second `inference-worker serve` with small settings: the LRU keeps
at most --max-models loaded, many concurrent requests to one model all get their own answer
(micro-batched in fours), and a request that runs past --timeout is stopped with 504 while the
worker keeps serving."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import WORKER_BIN, _logs, free_port, wait_healthy


def call(url: str, body: dict | None = None, token: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def worker(hub, workdir, name: str, *flags: str):
    port = free_port()
    log = workdir / f"{name}.log"
    _logs.append(log)
    cmd = [WORKER_BIN, "serve", "--hub", hub.url, "--bind", f"127.0.0.1:{port}", "--cache-dir", str(workdir / f"{name}-cache"), *flags]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def small_worker(hub, workdir):
    yield from worker(hub, workdir, "small-worker", "--max-models", "2", "--max-batch", "4")


@pytest.fixture(scope="module")
def impatient_worker(hub, workdir):
    yield from worker(hub, workdir, "impatient-worker", "--timeout", "0.05")


def test_least_recently_used_models_are_dropped(small_worker, hub):
    for name in ["tiny-bert-sentiment", "tiny-bert-ner", "tiny-bert-mlm"]:
        status, _ = call(f"{small_worker}/models/alice/{name}", {"inputs": "Paris is the [MASK] of France."}, hub.alice)
        assert status == 200, name
    _, info = call(f"{small_worker}/info")
    assert sorted(m["model_id"] for m in info["loaded"]) == ["alice/tiny-bert-mlm", "alice/tiny-bert-ner"]
    # The dropped model loads again on demand.
    status, _ = call(f"{small_worker}/models/alice/tiny-bert-sentiment", {"inputs": "fine"}, hub.alice)
    assert status == 200
    _, info = call(f"{small_worker}/info")
    assert sorted(m["model_id"] for m in info["loaded"]) == ["alice/tiny-bert-mlm", "alice/tiny-bert-sentiment"]


def test_concurrent_requests_each_get_their_own_answer(small_worker, hub):
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(24)]
    url = f"{small_worker}/models/alice/tiny-bert-sentiment"
    alone = [call(url, {"inputs": t}, hub.alice)[1] for t in texts[:6]]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda t: call(url, {"inputs": t}, hub.alice)[1], texts))
    for a, b in zip(alone, together[:6]):
        assert [x["label"] for x in a[0]] == [x["label"] for x in b[0]]
        for x, y in zip(a[0], b[0]):
            assert abs(x["score"] - y["score"]) < 1e-5


def test_work_past_the_timeout_is_stopped(impatient_worker, hub):
    url = f"{impatient_worker}/models/alice/tiny-gpt2"
    # Loading is not limited; 200 tokens take far longer than 50 ms.
    assert call(f"{impatient_worker}/models/alice/tiny-gpt2/health", token=hub.alice)[0] == 200
    status, answer = call(url, {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 200}}, hub.alice)
    assert status == 504, answer
    assert "longer than 0.05 s" in answer["error"]
    # The worker goes on serving.
    assert call(f"{impatient_worker}/health")[0] == 200


def test_a_broken_checkpoint_is_refused_with_the_reason(small_worker, hub, models, tmp_path):
    from huggingface_hub import HfApi

    src = models["tiny-bert-sentiment"]
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "README.md"]:
        (tmp_path / name).write_bytes((src / name).read_bytes())
    # Cut off mid-tensor: the header promises more bytes than the file holds.
    (tmp_path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:5000])
    api = HfApi(endpoint=hub.url, token=hub.alice)
    api.create_repo("alice/broken-bert")
    api.upload_folder(repo_id="alice/broken-bert", folder_path=tmp_path)
    for url in [f"{small_worker}/models/alice/broken-bert", hub.model_url("broken-bert")]:
        status, answer = call(url, {"inputs": "fine"}, hub.alice)
        assert status == 400, answer
        assert "model.safetensors" in answer["error"], answer
    assert call(f"{small_worker}/health")[0] == 200
