"""The worker's own limits, on a second `inference-worker serve` with small settings: the LRU keeps
at most --max-models loaded, many concurrent requests to one model all get their own answer
(micro-batched in fours), and a request that runs past --timeout is stopped with 504 while the
worker keeps serving. Generation: 16 concurrent streams decoded together give the tokens each
gives alone; a client that leaves frees its place in the batch; a full queue answers 503. A model
larger than --max-model-bytes is refused before any of it is downloaded."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
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


@pytest.fixture(scope="module")
def wide_worker(hub, workdir):
    yield from worker(hub, workdir, "wide-worker", "--max-streams", "16")


@pytest.fixture(scope="module")
def narrow_worker(hub, workdir):
    # One sequence decoded at a time and one more waiting: the queue's edges are in reach.
    yield from worker(hub, workdir, "narrow-worker", "--max-streams", "1", "--stream-queue", "1")


def load_bytes(hub, name: str) -> int:
    """What the worker downloads to load alice/<name>: configs, safetensors weights and card."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi

    info = HfApi(endpoint=hub.url, token=hub.alice).model_info(f"alice/{name}", files_metadata=True)
    wanted = ["*.json", "model*.safetensors", "README.md"]
    return sum(s.size for s in info.siblings if any(fnmatch(s.rfilename, p) for p in wanted))


@pytest.fixture(scope="module")
def frugal_worker(hub, workdir):
    # Exactly tiny-bert-sentiment's files: it loads, a larger model does not.
    yield from worker(hub, workdir, "frugal-worker", "--max-model-bytes", str(load_bytes(hub, "tiny-bert-sentiment")))


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in {url}/metrics")


def eventually(what: str, cond, timeout: float = 30.0):
    until = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < until, f"timed out waiting until {what}"
        time.sleep(0.002)


class Stream:
    """A streamed generation read event by event, over a connection the test can drop."""

    def __init__(self, worker_url: str, token: str, prompt: str, max_new_tokens: int):
        host, port = worker_url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        body = json.dumps({"inputs": prompt, "stream": True, "parameters": {"max_new_tokens": max_new_tokens}})
        self.conn.request("POST", "/models/alice/tiny-gpt2", body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()

    def next(self) -> dict:
        while True:
            line = self.resp.readline()
            assert line, "the stream ended"
            if line.startswith(b"data:"):
                return json.loads(line[5:])

    def drop(self):
        import socket
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.resp.close()
        self.conn.close()


def generated_ids(url: str, token: str, prompt: str, n: int) -> list[int]:
    status, answer = call(url, {"inputs": prompt, "parameters": {"max_new_tokens": n, "details": True}}, token)
    assert status == 200, answer
    return [t["id"] for t in answer[0]["details"]["tokens"]]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama-gguf"])
def test_concurrent_generation_streams_give_each_ones_tokens(wide_worker, hub, name):
    url = f"{wide_worker}/models/alice/{name}"
    prompts = [f"Stream {i} begins" + " and goes on" * (i % 5) for i in range(16)]
    alone = [generated_ids(url, hub.alice, p, 200) for p in prompts]
    steps, tokens = metric(wide_worker, "inference_generation_steps_total"), metric(wide_worker, "inference_generation_chosen_tokens_total")
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda p: generated_ids(url, hub.alice, p, 200), prompts))
    assert together == alone
    steps = metric(wide_worker, "inference_generation_steps_total") - steps
    tokens = metric(wide_worker, "inference_generation_chosen_tokens_total") - tokens
    # Decoded together: one step serves many sequences (alone, each token takes a step).
    assert tokens == sum(len(ids) for ids in together)
    assert steps < tokens / 4, f"{steps} decode steps for {tokens} tokens: the streams were not batched"


def test_a_client_that_leaves_frees_its_place(narrow_worker, hub):
    url = f"{narrow_worker}/models/alice/tiny-gpt2"
    assert call(f"{url}/health", token=hub.alice)[0] == 200
    chosen = metric(narrow_worker, "inference_generation_chosen_tokens_total")
    stream = Stream(narrow_worker, hub.alice, "Once upon a time", 230)
    for _ in range(3):
        stream.next()
    stream.drop()
    at_drop = metric(narrow_worker, "inference_generation_chosen_tokens_total")
    eventually("the sequence leaves the batch", lambda: metric(narrow_worker, "inference_generation_active") == 0)
    after = metric(narrow_worker, "inference_generation_chosen_tokens_total")
    # The server learns of the drop when writing the next event fails; the sequence is gone at
    # the step after that, long before its 230 tokens.
    assert after - at_drop <= 8, f"{after - at_drop} more tokens after the client left"
    assert after - chosen < 230
    # Its place serves the next request.
    assert len(generated_ids(url, hub.alice, "Another one", 5)) == 5


def test_a_full_generation_queue_answers_503(narrow_worker, hub):
    url = f"{narrow_worker}/models/alice/tiny-gpt2"
    assert call(f"{url}/health", token=hub.alice)[0] == 200
    running = Stream(narrow_worker, hub.alice, "Once upon a time", 230)
    running.next()  # decoding: it holds the only place
    waiting = {}
    t = threading.Thread(target=lambda: waiting.update(ids=generated_ids(url, hub.alice, "Waiting in line", 5)))
    t.start()
    try:
        eventually("the second request waits in the queue", lambda: metric(narrow_worker, "inference_generation_queued") == 1)
        req = urllib.request.Request(url, json.dumps({"inputs": "One too many"}).encode(),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {hub.alice}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=60)
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "1"
        assert json.loads(refused.value.read())["error_type"] == "overloaded"
    finally:
        running.drop()
        t.join(60)
    assert len(waiting["ids"]) == 5, "the waiting request runs once the place is free"


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


def test_a_broken_gguf_is_refused_with_the_reason(small_worker, hub, models, tmp_path):
    """A GGUF file cut short, one of an architecture the worker does not run, and one that is only
    a header of garbage: each answers 400 with what is wrong, and the worker goes on serving."""
    from huggingface_hub import HfApi

    import fixtures

    src = models["tiny-llama-gguf"]
    good = (src / fixtures.GGUF_FILE).read_bytes()
    arch = b"\x05" + b"\x00" * 7  # GGUF strings: a u64 length, then the bytes
    assert good.count(arch + b"llama") == 1
    cases = {
        "gguf-cut-short": (good[: len(good) // 2], "GGUF"),
        "gguf-mamba": (good.replace(arch + b"llama", arch + b"mamba"), '"mamba" is not supported'),
        "gguf-garbage": (b"GGUF\x03\x00\x00\x00" + b"\xff" * 64, "GGUF"),
    }
    api = HfApi(endpoint=hub.url, token=hub.alice)
    for name, (data, reason) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
        (folder / "README.md").write_bytes((src / "README.md").read_bytes())
        (folder / "model-Q8_0.gguf").write_bytes(data)
        api.create_repo(f"alice/{name}")
        api.upload_folder(repo_id=f"alice/{name}", folder_path=folder)
        status, answer = call(f"{small_worker}/models/alice/{name}", {"inputs": "Hello"}, hub.alice)
        assert status == 400, (name, answer)
        assert reason in answer["error"], (name, answer)
    status, answer = call(f"{small_worker}/models/alice/tiny-llama-gguf", {"inputs": "Hello", "parameters": {"max_new_tokens": 2}}, hub.alice)
    assert status == 200 and answer[0]["generated_text"], answer


def test_a_model_over_the_size_limit_is_refused_before_download(frugal_worker, hub, workdir):
    assert load_bytes(hub, "tiny-gpt2") > load_bytes(hub, "tiny-bert-sentiment"), "the fixtures changed: pick another pair"
    status, answer = call(f"{frugal_worker}/models/alice/tiny-gpt2", {"inputs": "Hello", "parameters": {"max_new_tokens": 2}}, hub.alice)
    assert status == 400, answer
    assert "too large" in answer["error"] and "--max-model-bytes" in answer["error"], answer
    # Refused from the listing: not one file of it was fetched.
    assert not (workdir / "frugal-worker-cache" / "models--alice--tiny-gpt2").exists()
    status, answer = call(f"{frugal_worker}/models/alice/tiny-bert-sentiment", {"inputs": "fine"}, hub.alice)
    assert status == 200 and answer[0][0]["label"], answer
    assert call(f"{frugal_worker}/health")[0] == 200
