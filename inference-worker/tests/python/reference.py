"""Independent numpy forward passes and pipeline post-processing: the oracle the worker is checked against.

Everything runs in float64, one sentence at a time (no padding, so no mask is needed), and follows
transformers 5 (modeling code and `pipelines/`) and TGI (generation) semantics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

_erf = np.frompyfunc(math.erf, 1, 1)


# --- building blocks ------------------------------------------------------------------------


def gelu(x):
    """transformers' "gelu": the exact erf form."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def gelu_new(x):
    """GPT-2's "gelu_new": the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_new, "relu": relu, "silu": silu}


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear(x, p, name, bias=True):
    """torch.nn.Linear: weight is [out, in]."""
    y = x @ p[f"{name}.weight"].T
    return y + p[f"{name}.bias"] if bias else y


def conv1d(x, p, name):
    """GPT-2's Conv1D: weight is [in, out]."""
    return x @ p[f"{name}.weight"] + p[f"{name}.bias"]


def attention(q, k, v, n_heads, n_kv_heads=None, causal=False):
    """q: [t, h*d]; k, v: [t, kv*d]. Returns [t, h*d]."""
    n_kv_heads = n_kv_heads or n_heads
    t = q.shape[0]
    d = q.shape[1] // n_heads
    q = q.reshape(t, n_heads, d).transpose(1, 0, 2)
    k = k.reshape(t, n_kv_heads, d).transpose(1, 0, 2)
    v = v.reshape(t, n_kv_heads, d).transpose(1, 0, 2)
    rep = n_heads // n_kv_heads  # grouped-query attention: each kv head serves `rep` query heads
    k = np.repeat(k, rep, axis=0)
    v = np.repeat(v, rep, axis=0)
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    if causal:
        scores = scores + np.triu(np.full((t, t), -np.inf), 1)
    out = softmax(scores) @ v
    return out.transpose(1, 0, 2).reshape(t, n_heads * d)


# --- checkpoints ------------------------------------------------------------------------------


class Checkpoint:
    """A model folder: config.json, model.safetensors (as float64) and tokenizer.json; or a GGUF
    file and tokenizer.json (see `_load_gguf`)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        # The quantization whose activation rounding the matrix products reproduce (GGUF only).
        self.activations = None
        ggufs = sorted(self.folder.glob("*.gguf"))
        if ggufs and not (self.folder / "model.safetensors").exists():
            self._load_gguf(ggufs[0])
        else:
            self.config = json.loads((self.folder / "config.json").read_text())
            self.params = {k: v.astype(np.float64) for k, v in load_file(str(self.folder / "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # Padding and truncation baked into tokenizer.json (MiniLM: Fixed(128), 128) don't apply:
        # one sentence needs no padding, and sentence-transformers truncates at max_seq_length.
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        st = self.folder / "sentence_bert_config.json"
        if st.exists():
            self.tokenizer.enable_truncation(json.loads(st.read_text())["max_seq_length"])

    def _load_gguf(self, path: Path):
        """A llama GGUF file read back into transformers' names, layout and config fields: weights
        dequantized (float64), q and k rows put back from llama.cpp's order. Q8_0 products in
        ggml (and candle) round the activations to Q8_0 blocks too, which `q8_0` reproduces."""
        import gguf

        reader = gguf.GGUFReader(str(path))
        md = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.token")}
        if md["general.architecture"] != "llama":
            raise ValueError(f"{path}: only llama GGUF files are read here")
        nh, nkv = md["llama.attention.head_count"], md["llama.attention.head_count_kv"]
        self.config = {
            "model_type": "llama",
            "num_hidden_layers": md["llama.block_count"],
            "num_attention_heads": nh,
            "num_key_value_heads": nkv,
            "rms_norm_eps": md["llama.attention.layer_norm_rms_epsilon"],
            "rope_theta": md.get("llama.rope.freq_base", 10000.0),
            "eos_token_id": md.get("tokenizer.ggml.eos_token_id"),
        }
        names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head",
                 "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
                 "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                 "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
        self.params = {}
        kinds = set()
        for t in reader.tensors:
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            w = w.reshape([int(n) for n in reversed(t.shape)])
            if w.ndim == 2:
                kinds.add(t.tensor_type.name)
            parts = t.name.split(".")
            if parts[0] == "blk":
                name = f"model.layers.{parts[1]}.{names[parts[2]]}.weight"
                if parts[2] in ("attn_q", "attn_k"):
                    heads = nh if parts[2] == "attn_q" else nkv
                    w = w.reshape(heads, w.shape[0] // heads // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)
            else:
                name = f"{names[parts[0]]}.weight"
            self.params[name] = w
        if kinds != {"Q8_0"}:
            raise ValueError(f"{path}: only Q8_0 matrices are reproduced here, not {sorted(kinds)}")
        self.activations = "Q8_0"

    def encode(self, text: str, special: bool = True):
        return self.tokenizer.encode(text, add_special_tokens=special)

    def id2label(self, i: int) -> str:
        return self.config["id2label"][str(i)]

    def prefixed(self, prefix: str) -> dict:
        """The parameters under `prefix.` (or all of them when the checkpoint has no prefix)."""
        if any(k.startswith(prefix + ".") for k in self.params):
            n = len(prefix) + 1
            return {k[n:]: v for k, v in self.params.items() if k.startswith(prefix + ".")}
        return self.params


# --- BERT family encoders ---------------------------------------------------------------------


def bert_encoder(ck: Checkpoint, ids, prefix="bert", roberta=False):
    """Last hidden state [t, hidden] of BertModel / RobertaModel (XLM-R) for one unpadded sentence."""
    c = ck.config
    p = ck.prefixed(prefix)
    ids = np.asarray(ids)
    t = len(ids)
    eps = c["layer_norm_eps"]
    act = ACTIVATIONS[c["hidden_act"]]
    if roberta:
        # create_position_ids_from_input_ids: cumsum(mask) * mask + padding_idx
        mask = (ids != c["pad_token_id"]).astype(np.int64)
        pos = np.cumsum(mask) * mask + c["pad_token_id"]
    else:
        pos = np.arange(t)
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][pos]
    x = x + p["embeddings.token_type_embeddings.weight"][np.zeros(t, dtype=np.int64)]
    x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    for i in range(c["num_hidden_layers"]):
        L = f"encoder.layer.{i}"
        q = linear(x, p, f"{L}.attention.self.query")
        k = linear(x, p, f"{L}.attention.self.key")
        v = linear(x, p, f"{L}.attention.self.value")
        a = linear(attention(q, k, v, c["num_attention_heads"]), p, f"{L}.attention.output.dense")
        x = layer_norm(a + x, p[f"{L}.attention.output.LayerNorm.weight"], p[f"{L}.attention.output.LayerNorm.bias"], eps)
        h = act(linear(x, p, f"{L}.intermediate.dense"))
        h = linear(h, p, f"{L}.output.dense")
        x = layer_norm(h + x, p[f"{L}.output.LayerNorm.weight"], p[f"{L}.output.LayerNorm.bias"], eps)
    return x


def distilbert_encoder(ck: Checkpoint, ids):
    c = ck.config
    p = ck.prefixed("distilbert")
    ids = np.asarray(ids)
    eps = 1e-12  # DistilBERT's LayerNorms are hard-coded to 1e-12
    act = ACTIVATIONS[c["activation"]]
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][np.arange(len(ids))]
    x = layer_norm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    for i in range(c["n_layers"]):
        L = f"transformer.layer.{i}"
        q = linear(x, p, f"{L}.attention.q_lin")
        k = linear(x, p, f"{L}.attention.k_lin")
        v = linear(x, p, f"{L}.attention.v_lin")
        a = linear(attention(q, k, v, c["n_heads"]), p, f"{L}.attention.out_lin")
        x = layer_norm(a + x, p[f"{L}.sa_layer_norm.weight"], p[f"{L}.sa_layer_norm.bias"], eps)
        h = linear(act(linear(x, p, f"{L}.ffn.lin1")), p, f"{L}.ffn.lin2")
        x = layer_norm(h + x, p[f"{L}.output_layer_norm.weight"], p[f"{L}.output_layer_norm.bias"], eps)
    return x


def encoder_hidden(ck: Checkpoint, ids):
    mt = ck.config["model_type"]
    if mt == "distilbert":
        return distilbert_encoder(ck, ids)
    if mt in ("xlm-roberta", "roberta"):
        return bert_encoder(ck, ids, prefix="roberta", roberta=True)
    return bert_encoder(ck, ids, prefix="bert")


# --- feature extraction / similarity ----------------------------------------------------------


def sentence_embedding(ck: Checkpoint, text: str) -> np.ndarray:
    """sentence-transformers: mean pooling over the tokens, then L2 normalisation."""
    h = encoder_hidden(ck, ck.encode(text).ids)
    v = h.mean(0)
    return v / np.linalg.norm(v)


def token_embeddings(ck: Checkpoint, text: str) -> np.ndarray:
    """The legacy feature-extraction pipeline on a plain encoder: the last hidden state [t, hidden]."""
    return encoder_hidden(ck, ck.encode(text).ids)


def sentence_similarity(ck: Checkpoint, source: str, sentences: list[str]) -> list[float]:
    s = sentence_embedding(ck, source)
    return [float(s @ sentence_embedding(ck, x)) for x in sentences]


# --- text classification ----------------------------------------------------------------------


def classification_logits(ck: Checkpoint, text: str) -> np.ndarray:
    p = ck.params
    mt = ck.config["model_type"]
    h = encoder_hidden(ck, ck.encode(text).ids)[0]  # the CLS / <s> token
    if mt == "distilbert":
        return linear(relu(linear(h, p, "pre_classifier")), p, "classifier")
    if mt in ("xlm-roberta", "roberta"):
        return linear(np.tanh(linear(h, p, "classifier.dense")), p, "classifier.out_proj")
    return linear(np.tanh(linear(h, p, "bert.pooler.dense")), p, "classifier")


def text_classification(ck: Checkpoint, text: str, function_to_apply: str | None = None, top_k: int | None = None):
    """[(label, score)] sorted by score, descending. Default function as transformers picks it."""
    logits = classification_logits(ck, text)
    if function_to_apply is None:
        multi = ck.config.get("problem_type") == "multi_label_classification" or len(logits) == 1
        function_to_apply = "sigmoid" if multi else "softmax"
    scores = {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[function_to_apply](logits)
    out = sorted(((ck.id2label(i), float(s)) for i, s in enumerate(scores)), key=lambda x: -x[1])
    return out if top_k is None else out[:top_k]


# --- token classification (transformers' TokenClassificationPipeline) ------------------------


def token_classification(ck: Checkpoint, text: str, aggregation_strategy: str = "simple", ignore_labels=("O",)):
    enc = ck.encode(text)
    h = encoder_hidden(ck, enc.ids)
    logits = linear(h, ck.params, "classifier")
    scores = softmax(logits)
    tok = ck.tokenizer
    prefix_aware = True  # WordPiece and BPE tokenizers have a continuing_subword_prefix
    unk_id = tok.token_to_id("[UNK]")

    pre = []
    for idx, (tid, (start, end)) in enumerate(zip(enc.ids, enc.offsets)):
        if enc.special_tokens_mask[idx]:
            continue
        word = tok.id_to_token(tid)
        word_ref = text[start:end]
        is_subword = len(word) != len(word_ref) if prefix_aware else False
        if tid == unk_id:
            word, is_subword = word_ref, False
        pre.append({"word": word, "scores": scores[idx], "start": start, "end": end, "index": idx, "is_subword": is_subword})

    def convert_tokens_to_string(tokens):
        return tok.decoder.decode(tokens)

    if aggregation_strategy in ("none", "simple"):
        entities = []
        for e in pre:
            i = int(e["scores"].argmax())
            entities.append({"entity": ck.id2label(i), "score": float(e["scores"][i]), "index": e["index"], "word": e["word"], "start": e["start"], "end": e["end"]})
    else:
        entities = []
        groups = []
        for e in pre:
            if groups and e["is_subword"]:
                groups[-1].append(e)
            else:
                groups.append([e])
        for g in groups:
            if aggregation_strategy == "first":
                s = g[0]["scores"]
            elif aggregation_strategy == "max":
                s = max(g, key=lambda e: e["scores"].max())["scores"]
            elif aggregation_strategy == "average":
                s = np.mean(np.stack([e["scores"] for e in g]), axis=0)
            else:
                raise ValueError(aggregation_strategy)
            i = int(s.argmax())
            entities.append({"entity": ck.id2label(i), "score": float(s[i]), "word": convert_tokens_to_string([e["word"] for e in g]), "start": g[0]["start"], "end": g[-1]["end"]})

    if aggregation_strategy != "none":
        entities = _group_entities(entities, convert_tokens_to_string)
    ignore = set(ignore_labels)
    return [e for e in entities if e.get("entity") not in ignore and e.get("entity_group") not in ignore]


def _get_tag(name):
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name


def _group_entities(entities, convert_tokens_to_string):
    def group(es):
        return {
            "entity_group": es[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean([e["score"] for e in es])),
            "word": convert_tokens_to_string([e["word"] for e in es]),
            "start": es[0]["start"],
            "end": es[-1]["end"],
        }

    out, cur = [], []
    for e in entities:
        if not cur:
            cur.append(e)
            continue
        bi, tag = _get_tag(e["entity"])
        _, last_tag = _get_tag(cur[-1]["entity"])
        if tag == last_tag and bi != "B":
            cur.append(e)
        else:
            out.append(group(cur))
            cur = [e]
    if cur:
        out.append(group(cur))
    return out


# --- fill-mask ----------------------------------------------------------------------------------


def mlm_logits(ck: Checkpoint, ids) -> np.ndarray:
    c = ck.config
    p = ck.params
    h = encoder_hidden(ck, ids)
    if c["model_type"] == "distilbert":
        x = ACTIVATIONS[c["activation"]](linear(h, p, "vocab_transform"))
        x = layer_norm(x, p["vocab_layer_norm.weight"], p["vocab_layer_norm.bias"], 1e-12)
        return x @ p["distilbert.embeddings.word_embeddings.weight"].T + p["vocab_projector.bias"]
    x = ACTIVATIONS[c["hidden_act"]](linear(h, p, "cls.predictions.transform.dense"))
    x = layer_norm(x, p["cls.predictions.transform.LayerNorm.weight"], p["cls.predictions.transform.LayerNorm.bias"], c["layer_norm_eps"])
    # The decoder is tied to the word embeddings (not saved); its bias is cls.predictions.bias.
    return x @ p["bert.embeddings.word_embeddings.weight"].T + p["cls.predictions.bias"]


def fill_mask(ck: Checkpoint, text: str, top_k: int = 5, targets: list[str] | None = None, mask_token="[MASK]"):
    tok = ck.tokenizer
    ids = np.array(ck.encode(text).ids)
    mask_id = tok.token_to_id(mask_token)
    (pos,) = np.nonzero(ids == mask_id)
    assert len(pos) == 1, "one mask per input"
    probs = softmax(mlm_logits(ck, ids)[pos[0]])
    candidates = np.arange(len(probs))
    if targets is not None:
        target_ids = []
        for t in targets:
            i = tok.token_to_id(t)
            if i is None:  # not a vocabulary entry: its first token, as transformers does
                i = tok.encode(t, add_special_tokens=False).ids[0]
            target_ids.append(i)
        candidates = np.array(sorted(set(target_ids)))
        top_k = min(top_k, len(candidates))
    order = candidates[np.argsort(-probs[candidates], kind="stable")][:top_k]
    out = []
    for t in order:
        filled = ids.copy()
        filled[pos[0]] = t
        out.append({"sequence": tok.decode(filled.tolist(), skip_special_tokens=True), "score": float(probs[t]), "token": int(t), "token_str": tok.decode([int(t)])})
    return out


# --- causal language models -------------------------------------------------------------------


def gpt2_logits(ck: Checkpoint, ids) -> np.ndarray:
    """Logits [t, vocab] of GPT2LMHeadModel (lm_head tied to wte)."""
    c = ck.config
    p = ck.prefixed("transformer")
    ids = np.asarray(ids)
    eps = c["layer_norm_epsilon"]
    act = ACTIVATIONS[c["activation_function"]]
    x = p["wte.weight"][ids] + p["wpe.weight"][np.arange(len(ids))]
    for i in range(c["n_layer"]):
        L = f"h.{i}"
        h = layer_norm(x, p[f"{L}.ln_1.weight"], p[f"{L}.ln_1.bias"], eps)
        q, k, v = np.split(conv1d(h, p, f"{L}.attn.c_attn"), 3, axis=-1)
        x = x + conv1d(attention(q, k, v, c["n_head"], causal=True), p, f"{L}.attn.c_proj")
        h = layer_norm(x, p[f"{L}.ln_2.weight"], p[f"{L}.ln_2.bias"], eps)
        x = x + conv1d(act(conv1d(h, p, f"{L}.mlp.c_fc")), p, f"{L}.mlp.c_proj")
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].T


def rotate_half(x):
    d = x.shape[-1] // 2
    return np.concatenate([-x[..., d:], x[..., :d]], axis=-1)


def rope(x, n_heads, theta):
    """HF Llama rotary embeddings (rotate_half layout) on [t, heads*d]."""
    t = x.shape[0]
    d = x.shape[1] // n_heads
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    freqs = np.outer(np.arange(t, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # [t, d]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    xh = x.reshape(t, n_heads, d)
    return (xh * cos + rotate_half(xh) * sin).reshape(t, n_heads * d)


def q8_0(x):
    """x as ggml's Q8_0 blocks hold it: per 32 values a scale amax/127 (kept as f16) and values
    rounded (half away from zero) in float32 to integers in [-127, 127]."""
    x32 = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    d = np.abs(x32).max(axis=1, keepdims=True) / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, np.float32(1)), np.float32(0)).astype(np.float32)
    scaled = x32 * inv
    q = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return (q.astype(np.float64) * d.astype(np.float16).astype(np.float64)).reshape(np.shape(x))


def llama_logits(ck: Checkpoint, ids) -> np.ndarray:
    c = ck.config
    p = ck.params
    ids = np.asarray(ids)
    eps = c["rms_norm_eps"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    theta = c.get("rope_theta") or c.get("rope_parameters", {}).get("rope_theta", 10000.0)

    def lin(x, name):
        return linear(q8_0(x) if ck.activations == "Q8_0" else x, p, name, bias=False)

    x = p["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        L = f"model.layers.{i}"
        h = rms_norm(x, p[f"{L}.input_layernorm.weight"], eps)
        q = rope(lin(h, f"{L}.self_attn.q_proj"), nh, theta)
        k = rope(lin(h, f"{L}.self_attn.k_proj"), nkv, theta)
        v = lin(h, f"{L}.self_attn.v_proj")
        x = x + lin(attention(q, k, v, nh, nkv, causal=True), f"{L}.self_attn.o_proj")
        h = rms_norm(x, p[f"{L}.post_attention_layernorm.weight"], eps)
        m = silu(lin(h, f"{L}.mlp.gate_proj")) * lin(h, f"{L}.mlp.up_proj")
        x = x + lin(m, f"{L}.mlp.down_proj")
    x = rms_norm(x, p["model.norm.weight"], eps)
    return lin(x, "lm_head")


def causal_logits(ck: Checkpoint, ids) -> np.ndarray:
    return gpt2_logits(ck, ids) if ck.config["model_type"] == "gpt2" else llama_logits(ck, ids)


def apply_repetition_penalty(logits, previous_ids, penalty):
    """transformers' RepetitionPenaltyLogitsProcessor over every id seen so far (prompt included)."""
    logits = logits.copy()
    seen = np.array(sorted(set(previous_ids)))
    s = logits[seen]
    logits[seen] = np.where(s < 0, s * penalty, s / penalty)
    return logits


class Generation:
    def __init__(self, prompt_ids, ids, logprobs, finish_reason, margins):
        self.prompt_ids = prompt_ids
        self.ids = ids  # generated ids; the EOS that ended it is not included
        self.logprobs = logprobs  # log-softmax of each generated id (after the repetition penalty)
        self.finish_reason = finish_reason
        self.margins = margins  # per step: top-1 minus top-2 logit (how robust greedy is to f32)


def greedy(ck: Checkpoint, prompt: str, max_new_tokens: int = 20, repetition_penalty: float = 1.0, eos_id: int | None = None) -> Generation:
    """Greedy decoding as TGI does it: EOS ends generation and is not part of the text."""
    eos_id = ck.config.get("eos_token_id") if eos_id is None else eos_id
    prompt_ids = ck.encode(prompt).ids
    ids = list(prompt_ids)
    out, logprobs, margins = [], [], []
    for _ in range(max_new_tokens):
        logits = causal_logits(ck, ids)[-1]
        if repetition_penalty != 1.0:
            logits = apply_repetition_penalty(logits, ids, repetition_penalty)
        top2 = np.partition(logits, -2)[-2:]
        margins.append(float(top2[1] - top2[0]))
        nxt = int(logits.argmax())
        if nxt == eos_id:
            return Generation(prompt_ids, out, logprobs, "eos_token", margins)
        out.append(nxt)
        logprobs.append(float(logits[nxt] - logits.max() - np.log(np.exp(logits - logits.max()).sum())))
        ids.append(nxt)
    return Generation(prompt_ids, out, logprobs, "length", margins)


def decode(ck: Checkpoint, ids) -> str:
    return ck.tokenizer.decode(list(ids), skip_special_tokens=True)


# --- T5 (encoder-decoder: summarization, translation, text2text-generation) -------------------


def t5_relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int, max_distance: int):
    """transformers' T5Attention._relative_position_bucket, float32 logarithm included (as torch
    computes it), so that the bucket boundaries (e.g. distance 16 and 32) fall where they do there."""
    rel = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).astype(np.int64) * num_buckets
        n = np.abs(rel)
    else:
        n = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    safe = np.maximum(n, 1).astype(np.float32)  # log(0) is never used: those positions are small
    scaled = np.log(safe / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), num_buckets - 1)
    return buckets + np.where(is_small, n, large)


def t5_position_bias(table, q_len: int, k_len: int, bidirectional: bool, c: dict) -> np.ndarray:
    """[heads, q_len, k_len] from a relative_attention_bias table [buckets, heads]."""
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]  # memory - context
    b = t5_relative_position_bucket(rel, bidirectional, c["relative_attention_num_buckets"], c.get("relative_attention_max_distance", 128))
    return table[b].transpose(2, 0, 1)


def t5_attention(x, kv, p, name, n_heads, bias):
    """T5Attention: no 1/sqrt(d) scaling; `bias` [heads, tq, tk] (position bias and/or mask) is added to the scores."""
    q = x @ p[f"{name}.q.weight"].T
    k = kv @ p[f"{name}.k.weight"].T
    v = kv @ p[f"{name}.v.weight"].T
    tq, tk = x.shape[0], kv.shape[0]
    d = q.shape[1] // n_heads
    q = q.reshape(tq, n_heads, d).transpose(1, 0, 2)
    k = k.reshape(tk, n_heads, d).transpose(1, 0, 2)
    v = v.reshape(tk, n_heads, d).transpose(1, 0, 2)
    scores = q @ k.transpose(0, 2, 1)
    if bias is not None:
        scores = scores + bias
    out = (softmax(scores) @ v).transpose(1, 0, 2).reshape(tq, n_heads * d)
    return out @ p[f"{name}.o.weight"].T


def t5_feed_forward(x, p, name, c):
    """T5DenseActDense (relu: wi, wo) or T5DenseGatedActDense (gated-gelu: gelu_new(wi_0 x) * wi_1 x, then wo)."""
    proj = c.get("feed_forward_proj", "relu")
    if proj.startswith("gated-"):
        act = ACTIVATIONS["gelu_new" if proj == "gated-gelu" else proj.split("-", 1)[1]]
        h = act(x @ p[f"{name}.wi_0.weight"].T) * (x @ p[f"{name}.wi_1.weight"].T)
    else:
        h = ACTIVATIONS[proj](x @ p[f"{name}.wi.weight"].T)
    return h @ p[f"{name}.wo.weight"].T


def t5_encoder(ck: Checkpoint, ids) -> np.ndarray:
    """T5Stack (encoder) for one unpadded sequence: [t, d_model] after the final layer norm."""
    c, p = ck.config, ck.params
    eps = c["layer_norm_epsilon"]
    x = p["shared.weight"][np.asarray(ids)]
    t = x.shape[0]
    # Block 0's relative_attention_bias serves every block.
    bias = t5_position_bias(p["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], t, t, True, c)
    for i in range(c["num_layers"]):
        B = f"encoder.block.{i}"
        h = rms_norm(x, p[f"{B}.layer.0.layer_norm.weight"], eps)
        x = x + t5_attention(h, h, p, f"{B}.layer.0.SelfAttention", c["num_heads"], bias)
        h = rms_norm(x, p[f"{B}.layer.1.layer_norm.weight"], eps)
        x = x + t5_feed_forward(h, p, f"{B}.layer.1.DenseReluDense", c)
    return rms_norm(x, p["encoder.final_layer_norm.weight"], eps)


def t5_decoder_logits(ck: Checkpoint, encoded: np.ndarray, decoder_ids) -> np.ndarray:
    """T5ForConditionalGeneration's logits [t, vocab] for decoder_ids (recomputed whole, no cache)."""
    c, p = ck.config, ck.params
    eps = c["layer_norm_epsilon"]
    y = p["shared.weight"][np.asarray(decoder_ids)]
    t = y.shape[0]
    bias = t5_position_bias(p["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], t, t, False, c)
    bias = bias + np.triu(np.full((t, t), -np.inf), 1)  # causal
    for i in range(c.get("num_decoder_layers") or c["num_layers"]):
        B = f"decoder.block.{i}"
        h = rms_norm(y, p[f"{B}.layer.0.layer_norm.weight"], eps)
        y = y + t5_attention(h, h, p, f"{B}.layer.0.SelfAttention", c["num_heads"], bias)
        h = rms_norm(y, p[f"{B}.layer.1.layer_norm.weight"], eps)
        y = y + t5_attention(h, encoded, p, f"{B}.layer.1.EncDecAttention", c["num_heads"], None)  # no position bias
        h = rms_norm(y, p[f"{B}.layer.2.layer_norm.weight"], eps)
        y = y + t5_feed_forward(h, p, f"{B}.layer.2.DenseReluDense", c)
    y = rms_norm(y, p["decoder.final_layer_norm.weight"], eps)
    if c.get("tie_word_embeddings", True) is not False:
        # Tied embeddings: the decoder output is scaled by d_model**-0.5 before the projection.
        y = y * c["d_model"] ** -0.5
    head = p["lm_head.weight"] if "lm_head.weight" in p else p["shared.weight"]
    return y @ head.T


def t5_prefix(ck: Checkpoint, task: str) -> str:
    """The input prefix transformers' pipelines take from config.json's task_specific_params:
    summarization's entry, or for translation the one `translation*` entry (if exactly one)."""
    tsp = ck.config.get("task_specific_params") or {}
    if task == "summarization":
        entry = tsp.get("summarization")
    elif task == "translation":
        keys = [k for k in tsp if k.startswith("translation")]
        entry = tsp[keys[0]] if len(keys) == 1 else None
    else:
        entry = None
    return (entry or {}).get("prefix", "")


T5_MAX_INPUT = 512  # tokenizer_config.json's model_max_length


def t5_greedy(ck: Checkpoint, text: str, task: str, max_new_tokens: int = 20) -> Generation:
    """Greedy decoding from decoder_start_token_id; EOS ends generation and is not part of the
    output. The input is prefix + text with </s> appended by the tokenizer, truncated to 512."""
    c = ck.config
    prompt_ids = ck.encode(t5_prefix(ck, task) + text).ids
    if len(prompt_ids) > T5_MAX_INPUT:  # the tokenizer's truncation keeps room for the </s> it appends
        prompt_ids = prompt_ids[: T5_MAX_INPUT - 1] + [c["eos_token_id"]]
    encoded = t5_encoder(ck, prompt_ids)
    dec = [c.get("decoder_start_token_id", c["pad_token_id"])]
    out, logprobs, margins = [], [], []
    for _ in range(max_new_tokens):
        logits = t5_decoder_logits(ck, encoded, dec)[-1]
        top2 = np.partition(logits, -2)[-2:]
        margins.append(float(top2[1] - top2[0]))
        nxt = int(logits.argmax())
        if nxt == c["eos_token_id"]:
            return Generation(prompt_ids, out, logprobs, "eos_token", margins)
        out.append(nxt)
        logprobs.append(float(logits[nxt] - logits.max() - np.log(np.exp(logits - logits.max()).sum())))
        dec.append(nxt)
    return Generation(prompt_ids, out, logprobs, "length", margins)
