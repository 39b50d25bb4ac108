"""Helper for bench/llamacpp: writes a Llama-shaped GGUF checkpoint with random weights, quantizes it
with llama.cpp, runs llama.cpp (llama-cpp-python) on it in-process, drives the worker over HTTP on
the same files, and prints the table. Every subcommand runs in the llama.cpp venv
(HUB_BENCH_LLAMACPP_VENV); each measuring subcommand writes one JSON file that `table` reads.

  llamacpp.py prepare DIR GPT2_TOKENIZER_JSON    DIR/<quant>/ for each quantization: model-<QUANT>.gguf,
                                             tokenizer.json and a card (pipeline_tag text-generation)
  llamacpp.py train DIR GPT2_TOKENIZER_JSON      (in the torch venv) DIR/trained.npz: the small trained llama
  llamacpp.py prepare-trained DIR GPT2_TOKENIZER_JSON   DIR/trained-<quant>/ from it, as `prepare` does
  llamacpp.py upload DIR                         alice/llama-<quant> and alice/trained-<quant> for each
                                             (reads HF_ENDPOINT, HF_TOKEN)
  llamacpp.py llamacpp GGUF TOKENIZER OUT [trained]   llama.cpp: time to first token, decode tokens/s, ids
  llamacpp.py worker QUANT WORKER PID OUT        the worker, on a fresh process: load, warm-up, timed
                                             rounds, then BENCH_STREAMS concurrent streams
  llamacpp.py worker-trained QUANT WORKER OUT    the worker's greedy ids on the trained model
  llamacpp.py table OUTDIR                       prints the figures; exits 1 when a check failed

The model has the shapes of TinyLlama 1.1B (BENCH_GGUF_SHAPE=1.1b, the default: width 2048, 22
layers, 32 heads, 4 key-value heads, FFN 5632) or a small one for a quick look (BENCH_GGUF_SHAPE=small),
and GPT-2's byte-level BPE vocabulary (50257 tokens), so both sides tokenize nothing differently:
the prompt's ids come from the same tokenizer.json on both. Weights are random (seeded), so the
text means nothing; the speed is a 1.1 B model's, and the ids show whether both run the same math
up to the first near-tie. The trained model (TRAINED) has a trained model's margins: there the ids
must be identical.
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inference as common  # noqa: E402  (bench/inference.py: Http, Meter, generate_http, …)

QUANTS = ["Q8_0", "Q4_K_M"]
SHAPES = {
    "1.1b": {"width": 2048, "layers": 22, "heads": 32, "kv_heads": 4, "ffn": 5632},
    "small": {"width": 512, "layers": 8, "heads": 8, "kv_heads": 4, "ffn": 1408},
}
SHAPE = os.environ.get("BENCH_GGUF_SHAPE", "1.1b")
SEED = 4321
EOS = common.EOS
CONTEXT = 2048
THREADS = len(os.sched_getaffinity(0))


def repo(quant, prefix=""):
    """The hub repo of a model folder: alice/llama-q8-0, alice/trained-q8-0, …"""
    return f"alice/{prefix or 'llama-'}{quant.lower().replace('_', '-')}"


def gpt2_vocab(tokenizer_json):
    """GPT-2's tokens, merges and special ids from its tokenizer.json, for the GGUF header."""
    tok = json.load(open(tokenizer_json))
    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    for added in tok.get("added_tokens", []):
        if added["id"] >= len(tokens):
            tokens.extend([None] * (added["id"] + 1 - len(tokens)))
        tokens[added["id"]] = added["content"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    specials = {a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    return tokens, merges, specials


def write_f16_gguf(path, name, shape, tokenizer_json, tensors):
    """A llama GGUF (F16 matrices, f32 norms) of `shape` with GPT-2's vocabulary; `tensors` yields
    (GGUF name, numpy array [out, in]) in file order."""
    import gguf

    c, heads, kv, ffn, layers = shape["width"], shape["heads"], shape["kv_heads"], shape["ffn"], shape["layers"]
    tokens, merges, specials = gpt2_vocab(tokenizer_json)
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(c)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(c // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL for i in range(n_vocab)])
    w.add_token_merges(merges)
    w.add_bos_token_id(EOS)
    w.add_eos_token_id(EOS)
    w.add_add_bos_token(False)
    for tensor_name, array in tensors:
        w.add_tensor(tensor_name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(f16, out, prefix, tokenizer_json, card):
    """`f16` quantized by llama.cpp into out/<prefix><quant>/model-<QUANT>.gguf for each of QUANTS,
    each folder with tokenizer.json and a model card."""
    import llama_cpp

    for quant in QUANTS:
        folder = os.path.join(out, prefix + quant.lower())
        os.makedirs(folder, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
        params.nthread = THREADS
        t0 = time.perf_counter()
        dst = os.path.join(folder, f"model-{quant}.gguf")
        rc = llama_cpp.llama_model_quantize(f16.encode(), dst.encode(), params)
        if rc != 0:
            raise SystemExit(f"llama_model_quantize {quant} failed: {rc}")
        print(f"  quantized to {quant} in {time.perf_counter() - t0:.1f} s: {os.path.getsize(dst) / 2**20:.0f} MiB",
              file=sys.stderr)
        with open(tokenizer_json, "rb") as src, open(os.path.join(folder, "tokenizer.json"), "wb") as out_f:
            out_f.write(src.read())
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write(f"---\npipeline_tag: text-generation\nlibrary_name: gguf\n---\n\n{card}, {quant}.\n")
    os.remove(f16)


def prepare(out, tokenizer_json):
    shape = SHAPES[SHAPE]
    c, heads, kv, ffn, layers = shape["width"], shape["heads"], shape["kv_heads"], shape["ffn"], shape["layers"]
    hd = c // heads
    n_vocab = len(gpt2_vocab(tokenizer_json)[0])
    rng = np.random.default_rng(SEED)

    def normal(rows, cols, std):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)).astype(np.float16)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    # GGUF shapes are [out, in] rows as numpy sees them (ggml's ne reversed).
    def tensors():
        yield "token_embd.weight", normal(n_vocab, c, 0.5)
        for i in range(layers):
            b = f"blk.{i}"
            yield f"{b}.attn_norm.weight", norm(c)
            yield f"{b}.attn_q.weight", normal(c, c, 0.02)
            yield f"{b}.attn_k.weight", normal(kv * hd, c, 0.02)
            yield f"{b}.attn_v.weight", normal(kv * hd, c, 0.02)
            yield f"{b}.attn_output.weight", normal(c, c, 0.004)
            yield f"{b}.ffn_norm.weight", norm(c)
            yield f"{b}.ffn_gate.weight", normal(ffn, c, 0.02)
            yield f"{b}.ffn_up.weight", normal(ffn, c, 0.02)
            yield f"{b}.ffn_down.weight", normal(c, ffn, 0.004)
        yield "output_norm.weight", norm(c)
        yield "output.weight", normal(n_vocab, c, 0.05)

    os.makedirs(out, exist_ok=True)
    f16 = os.path.join(out, "model-F16.gguf")
    write_f16_gguf(f16, f"random llama {SHAPE}", shape, tokenizer_json, tensors())
    quantize(f16, out, "", tokenizer_json, f"Random {SHAPE} llama")


# A checkpoint with trained weights, for comparing greedy ids where a trained model's margins are,
# not a random one's near-ties: TRAINED's shapes (GQA, K-quant-sized rows), trained here with torch
# on the Zen of Python (CPython's `this`) until it recites it, then written and quantized like the
# random one. A few minutes on 2 cores; seeded.
TRAINED = {"width": 256, "layers": 4, "heads": 8, "kv_heads": 4, "ffn": 768}
TRAIN_SEED = 2024
TRAIN_WINDOW = 128
# Loss ~0.03 from step ~100 on (a window's first tokens are ambiguous in any text); ~0.7 s a step on 2
# cores, most of it the 50257-wide output layer.
TRAIN_STEPS = 150


def zen():
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return "".join(this.d.get(ch, ch) for ch in this.s)


# Its first two lines; the model recites what follows.
TRAINED_PROMPT = "\n".join(zen().split("\n")[:3]) + "\n"


def train(out, tokenizer_json):
    """Runs in the torch venv (HUB_BENCH_TORCH_VENV): trains a llama of TRAINED's shapes, the same
    math as llama.cpp's llama (RMS norm, rotary pairs (2i, 2i+1), grouped keys and values, SwiGLU),
    and saves its weights under their GGUF names as out/trained.npz."""
    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer

    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(THREADS)
    c, heads, kv, ffn, layers = (TRAINED[k] for k in ("width", "heads", "kv_heads", "ffn", "layers"))
    hd, group = c // heads, heads // kv
    n_vocab = len(gpt2_vocab(tokenizer_json)[0])
    data = torch.tensor(Tokenizer.from_file(tokenizer_json).encode((zen() + "\n\n") * 8).ids)

    def param(*size, std=0.02, ones=False):
        return torch.nn.Parameter(torch.ones(*size) if ones else torch.randn(*size) * std)

    P = {"token_embd.weight": param(n_vocab, c, std=0.5)}
    for i in range(layers):
        b = f"blk.{i}"
        P[f"{b}.attn_norm.weight"] = param(c, ones=True)
        P[f"{b}.attn_q.weight"] = param(c, c)
        P[f"{b}.attn_k.weight"] = param(kv * hd, c)
        P[f"{b}.attn_v.weight"] = param(kv * hd, c)
        P[f"{b}.attn_output.weight"] = param(c, c)
        P[f"{b}.ffn_norm.weight"] = param(c, ones=True)
        P[f"{b}.ffn_gate.weight"] = param(ffn, c)
        P[f"{b}.ffn_up.weight"] = param(ffn, c)
        P[f"{b}.ffn_down.weight"] = param(c, ffn)
    P["output_norm.weight"] = param(c, ones=True)
    P["output.weight"] = param(n_vocab, c)

    inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.arange(TRAIN_WINDOW, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]

    def rope(t):
        a, b = t[..., 0::2], t[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)

    def rms(t, w):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(x):
        B, T = x.shape
        h = P["token_embd.weight"][x]
        for i in range(layers):
            b = f"blk.{i}"
            n = rms(h, P[f"{b}.attn_norm.weight"])
            q = rope((n @ P[f"{b}.attn_q.weight"].T).view(B, T, heads, hd))
            k = rope((n @ P[f"{b}.attn_k.weight"].T).view(B, T, kv, hd)).repeat_interleave(group, dim=2)
            v = (n @ P[f"{b}.attn_v.weight"].T).view(B, T, kv, hd).repeat_interleave(group, dim=2)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
            h = h + a.transpose(1, 2).reshape(B, T, c) @ P[f"{b}.attn_output.weight"].T
            n = rms(h, P[f"{b}.ffn_norm.weight"])
            h = h + (F.silu(n @ P[f"{b}.ffn_gate.weight"].T) * (n @ P[f"{b}.ffn_up.weight"].T)) @ P[f"{b}.ffn_down.weight"].T
        return rms(h, P["output_norm.weight"]) @ P["output.weight"].T

    opt = torch.optim.Adam(P.values(), lr=3e-3)
    # Down to zero by the last step: at a constant rate the loss still jumps about (0.03-0.06 at
    # step 150) and the recitation's smallest top-2 margin with it (0.03-3.5 over four runs).
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, TRAIN_STEPS)
    t0, avg = time.perf_counter(), None
    for step in range(1, TRAIN_STEPS + 1):
        starts = torch.randint(0, len(data) - TRAIN_WINDOW - 1, (4,))
        x = torch.stack([data[s:s + TRAIN_WINDOW] for s in starts])
        y = torch.stack([data[s + 1:s + TRAIN_WINDOW + 1] for s in starts])
        loss = F.cross_entropy(forward(x).reshape(-1, n_vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        avg = loss.item() if avg is None else 0.9 * avg + 0.1 * loss.item()
        if step % 50 == 0:
            print(f"  step {step}: loss {avg:.4f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(f"  trained {step} steps to loss {avg:.4f} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, "trained.npz"), **{k: v.detach().numpy() for k, v in P.items()},
             **{"meta.steps": np.array(step), "meta.loss": np.array(avg)})


def prepare_trained(out, tokenizer_json):
    """out/trained.npz (from `train`) as an F16 GGUF, quantized to out/trained-<quant>/."""
    saved = np.load(os.path.join(out, "trained.npz"))
    names = [k for k in saved.files if not k.startswith("meta.")]
    tensors = ((k, saved[k].astype(np.float32 if saved[k].ndim == 1 else np.float16)) for k in names)
    f16 = os.path.join(out, "trained-F16.gguf")
    write_f16_gguf(f16, "llama trained on the Zen of Python", TRAINED, tokenizer_json, tensors)
    with open(os.path.join(out, "trained.json"), "w") as f:
        json.dump({"steps": int(saved["meta.steps"]), "loss": float(saved["meta.loss"])}, f)
    quantize(f16, out, "trained-", tokenizer_json, "A small llama trained on the Zen of Python")


def upload(out):
    from huggingface_hub import HfApi

    api = HfApi()
    for prefix in ("", "trained-"):
        for quant in QUANTS:
            name = repo(quant, prefix)
            api.create_repo(name, exist_ok=True)
            api.upload_folder(repo_id=name, folder_path=os.path.join(out, prefix + quant.lower()), commit_message="bench model")


def llamacpp(path, tokenizer_json, out, model="random"):
    """llama.cpp through llama-cpp-python in this process: the prompt's ids are evaluated in one
    batch, then each chosen id (argmax of the last logits) one at a time, as greedy decoding.
    `model` random: the bench's prompt; trained: TRAINED_PROMPT."""
    import llama_cpp
    from tokenizers import Tokenizer

    prompt = Tokenizer.from_file(tokenizer_json).encode(TRAINED_PROMPT if model == "trained" else common.PROMPT).ids
    t0 = time.perf_counter()
    # The KV cache in f32, as the worker keeps it (llama.cpp's default is f16, which rounds
    # every key and value and so changes the numbers, not only the speed).
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS,
                          verbose=False, logits_all=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    load_s = time.perf_counter() - t0

    n_vocab = llm.n_vocab()

    def last_logits():
        # llama.cpp's own buffer, read in place (Llama.eval keeps no copy without logits_all).
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))

    gaps = []

    def gen(max_new_tokens=common.NEW_TOKENS):
        llm.reset()
        gaps.clear()
        start = time.perf_counter()
        llm.eval(prompt)
        ids, logprobs, first = [], [], None
        for _ in range(max_new_tokens):
            logits = last_logits()
            nxt = int(np.argmax(logits))
            now = time.perf_counter()
            first = first or now
            ids.append(nxt)
            # What greedy rests on, for comparing with the worker's: the chosen token's
            # log-probability and its lead over the runner-up (outside the timed path's
            # essentials, but cheap next to a 1 B model's step).
            top2 = np.partition(logits, -2)[-2:]
            gaps.append(float(top2[1] - top2[0]))
            m = float(logits.max())
            logprobs.append(float(logits[nxt] - m - np.log(np.exp(logits - m).sum())))
            if nxt == EOS or len(ids) == max_new_tokens:
                break
            llm.eval([nxt])
        last = time.perf_counter()
        return first - start, last - first, ids, logprobs, None

    gen(4)  # warm-up
    ttft, tps, (ids, logprobs, _), cpu = common.time_generate(gen, "llama.cpp")
    result = {"load_s": load_s, "ttft_s": ttft, "tokens_per_s": tps, "ids": ids, "logprobs": logprobs, "gaps": list(gaps), "cpu": cpu,
              "threads": THREADS, "llama_cpp_version": llama_cpp.__version__,
              "system_info": llama_cpp.llama_print_system_info().decode(errors="replace")}
    result.update(common.rss())
    common.save(out, result)


def worker(quant, worker_url, pid, out):
    w = common.Http(worker_url)
    path = f"/models/{repo(quant)}"
    result = {"load_s": common.first_request_load(lambda: common.generate_http(w, path, 1),
                                                  lambda: common.generate_http(w, path, 1))}
    common.generate_http(w, path)  # warm-up
    ttft, tps, (ids, logprobs, _), cpu = common.time_generate(lambda: common.generate_http(w, path), "worker", pid)
    result.update(ttft_s=ttft, tokens_per_s=tps, ids=ids, logprobs=logprobs, cpu=cpu)
    result.update(common.concurrent_generation(worker_url, path, ids, pid))
    result.update(common.rss(pid))
    common.save(out, result)


def worker_trained(quant, worker_url, out):
    """The worker's greedy ids on the trained checkpoint (after one warm-up request)."""
    w = common.Http(worker_url)
    path = f"/models/{repo(quant, 'trained-')}"
    common.generate_http(w, path, 4, TRAINED_PROMPT)
    _, _, ids, logprobs, _ = common.generate_http(w, path, prompt=TRAINED_PROMPT)
    common.save(out, {"ids": ids, "logprobs": logprobs})


def compare_ids(label, wk, lc, trained):
    """Prints how the two sides' greedy ids compare; False when they fail the bench's rule: the
    random model's may part only at a near-tie, the trained model's not at all."""
    n = next((i for i, (a, b) in enumerate(zip(wk["ids"], lc["ids"])) if a != b), min(len(wk["ids"]), len(lc["ids"])))
    # How far the two sides' numbers are apart where they still agree: the chosen tokens'
    # log-probabilities (logit differences show up there one to one).
    noise = max((abs(a - b) for a, b in zip(wk["logprobs"][:n], lc["logprobs"][:n])), default=0.0)
    if wk["ids"] == lc["ids"]:
        print(f"|   {label} greedy ids: identical, {len(wk['ids'])} tokens; log-probabilities within {noise:.4f}; "
              f"llama.cpp's smallest top-2 gap {min(lc['gaps']):.3f} |")
        return True
    if n >= min(len(wk["ids"]), len(lc["ids"])):
        print(f"|   {label} greedy ids: identical for {n} tokens, then one side stopped: worker {len(wk['ids'])}, "
              f"llama.cpp {len(lc['ids'])} tokens |")
        return False
    gap = lc["gaps"][n]
    tie = gap <= 2 * noise
    print(f"|   {label} greedy ids: identical for {n} tokens (log-probabilities within {noise:.4f}), then differ "
          f"where llama.cpp's top two are {gap:.4f} apart: {'a near-tie (≤ 2× the difference seen)' if tie else 'NOT a near-tie'} |")
    return tie and n >= 2 and not trained


def table(outdir):
    def load(name):
        p = os.path.join(outdir, name)
        return json.load(open(p)) if os.path.exists(p) else None

    ok = True
    shape = SHAPES[SHAPE]
    params = (shape["width"] * (2 * 50257) + shape["layers"] * (
        2 * shape["width"] * shape["width"] + 2 * shape["width"] * (shape["width"] // shape["heads"] * shape["kv_heads"])
        + 3 * shape["width"] * shape["ffn"]))
    print(f"\nGGUF, random llama ({SHAPE}: {params / 1e9:.2f} B parameters), greedy, {common.NEW_TOKENS} new tokens, "
          f"{THREADS} threads each side\n")
    print(f"| {'':<34} | {'worker':>10} | {'llama.cpp':>10} | {'ratio':>7} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 12}|{'-' * 9}|")
    for quant in QUANTS:
        wk, lc = load(f"worker-{quant}.json"), load(f"llamacpp-{quant}.json")

        def cell(d, key, scale=1.0, fmt="{:.1f}"):
            return fmt.format(d[key] * scale) if d and d.get(key) is not None else "—"

        def ratio(key, invert=False):
            if not (wk and lc and wk.get(key) and lc.get(key)):
                return "—"
            return f"{(lc[key] / wk[key] if invert else wk[key] / lc[key]):.2f}×"

        print(f"| {quant + ' decode, tokens/s':<34} | {cell(wk, 'tokens_per_s'):>10} | {cell(lc, 'tokens_per_s'):>10} | {ratio('tokens_per_s'):>7} |")
        print(f"| {quant + ' time to first token, ms':<34} | {cell(wk, 'ttft_s', 1e3):>10} | {cell(lc, 'ttft_s', 1e3):>10} | {ratio('ttft_s', True):>7} |")
        print(f"| {quant + ' ' + str(common.STREAMS) + ' streams, tokens/s':<34} | {cell(wk, 'streams_tokens_per_s'):>10} | {'—':>10} | {'':>7} |")
        print(f"| {quant + ' first request, s (fetch + load)':<34} | {cell(wk, 'load_s', 1, '{:.2f}'):>10} | {cell(lc, 'load_s', 1, '{:.2f}'):>10} | {'':>7} |")
        print(f"| {quant + ' peak RSS, MiB':<34} | {cell(wk, 'peak_rss_mib', 1, '{:.0f}'):>10} | {cell(lc, 'peak_rss_mib', 1, '{:.0f}'):>10} | {'':>7} |")
        if wk and lc:
            ok &= compare_ids(quant, wk, lc, trained=False)
            if not wk.get("streams_same", False):
                print(f"|   {quant} {common.STREAMS} streams' ids differ from the lone run's |")
                ok = False
        for name, d in (("worker", wk), ("llama.cpp", lc)):
            cpu = d and d.get("cpu")
            if cpu:
                print(f"    {quant} {name}: {cpu['cpu_ms_per_unit']:.1f} CPU ms/token, {cpu['cores']:.2f} cores busy, "
                      f"{cpu['threads_working']} threads working of {cpu['threads_alive']}")
            if d and d.get("streams_cpu"):
                s = d["streams_cpu"]
                print(f"    {quant} {name} streams: {s['cpu_ms_per_unit']:.1f} CPU ms/token, {s['cores']:.2f} cores busy; "
                      f"slowest first token {d['streams_ttft_s'] * 1e3:.0f} ms; "
                      f"{d['streams_tokens_per_s'] / d['tokens_per_s']:.2f}× one stream")
    info = load("trained.json")
    print(f"\nGGUF, a llama trained here ({TRAINED['width']} wide, {TRAINED['layers']} layers, {TRAINED['heads']} heads, "
          f"{TRAINED['kv_heads']} key-value heads) on the Zen of Python"
          + (f" for {info['steps']} steps to loss {info['loss']:.3f}" if info else "")
          + f": greedy after its first two lines, {common.NEW_TOKENS} new tokens; the ids must be identical\n")
    for quant in QUANTS:
        wk, lc = load(f"worker-trained-{quant}.json"), load(f"llamacpp-trained-{quant}.json")
        if wk and lc:
            ok &= compare_ids(f"trained {quant}", wk, lc, trained=True)
        else:
            print(f"|   trained {quant}: {'no worker figures' if not wk else 'no llama.cpp figures'} |")
            ok = False
    lc = load(f"llamacpp-{QUANTS[0]}.json")
    if lc:
        print(f"\nllama-cpp-python {lc['llama_cpp_version']}: {lc['system_info'].strip()}")
    return ok


COMMANDS = {"prepare": prepare, "train": train, "prepare-trained": prepare_trained, "upload": upload,
            "llamacpp": llamacpp, "worker": worker, "worker-trained": worker_trained}

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "table":
        sys.exit(0 if table(*args) else 1)
    if cmd not in COMMANDS:
        sys.exit(f"unknown command {cmd}")
    COMMANDS[cmd](*args)
