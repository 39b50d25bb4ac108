"""huggingface_hub's InferenceClient against `hub-server` + `inference-worker`, every task checked
against the numpy reference (reference.py) on the fixture models (fixtures.py)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from huggingface_hub.errors import HfHubHTTPError

import fixtures
import reference
from conftest import PRIVATE_MODEL

TOL = 1e-4  # the worker computes in f32, the reference in f64

# all-MiniLM-L6-v2's embedding of "That is a happy person" (sentence-transformers, PyTorch): the first
# 8 values. Pinned, so that a mistake shared by the reference and the worker can't go unnoticed.
HAPPY = "That is a happy person"
HAPPY_FIRST_8 = [-0.033877, 0.091942, 0.048701, -0.034884, -0.064829, -0.026686, 0.134293, -0.006915]
SIMILAR = ["That is a happy dog", "That is a very happy person", "Today is a sunny day"]
HAPPY_SIMILARITIES = [0.6946, 0.9429, 0.2569]  # the model card's published example

NER_TEXTS = ["Angela Merkel visited Kraków and Zürich with Müller-Lüdenscheidt", "Zürich café Müller"]
MASKED = "Paris is the [MASK] of France."

# Prompts whose greedy continuations stay well clear of near-ties (top-1 minus top-2 logit > 1e-3).
PROMPT = {"tiny-gpt2": "Once upon a time", "tiny-llama": "Zürich café", "tiny-llama-gguf": "Once upon a time"}
STOP_PROMPT = {"tiny-gpt2": "def fib(n):", "tiny-llama": "Zürich café", "tiny-llama-gguf": "def fib(n):"}
GENERATORS = ["tiny-gpt2", "tiny-llama", "tiny-llama-gguf"]


def close(a, b, tol=TOL):
    return abs(float(a) - float(b)) <= tol


def post(url: str, body: bytes, token: str | None = None, content_type="application/json"):
    """(status, parsed JSON body) of a raw POST."""
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


# --- feature-extraction and sentence-similarity (real MiniLM weights) --------------------------


def test_feature_extraction_one_sentence(hub, ref):
    out = hub.client("minilm").feature_extraction(HAPPY)
    assert out.shape == (1, 384)
    expected = reference.sentence_embedding(ref("minilm"), HAPPY)
    np.testing.assert_allclose(expected[:8], HAPPY_FIRST_8, atol=1e-5)  # the reference itself
    np.testing.assert_allclose(out[0], expected, atol=TOL)
    np.testing.assert_allclose(out[0, :8], HAPPY_FIRST_8, atol=TOL)
    assert close(np.linalg.norm(out[0]), 1.0)


def test_feature_extraction_batch(hub, ref):
    texts = [HAPPY, "A man is eating food.", "The quick brown fox jumps over the lazy dog near the riverbank at dawn.", "ok"]
    out = hub.client("minilm").feature_extraction(texts)
    assert out.shape == (len(texts), 384)
    for row, text in zip(out, texts):
        np.testing.assert_allclose(row, reference.sentence_embedding(ref("minilm"), text), atol=TOL)


def test_feature_extraction_longer_than_tokenizer_json_truncation(hub, ref):
    """MiniLM's tokenizer.json truncates at 128 tokens; sentence-transformers reads 256 from
    sentence_bert_config.json. A 200-token text must be embedded whole."""
    text = " ".join(f"word{i % 7} of sentence number {i}." for i in range(30))
    n = len(ref("minilm").encode(text).ids)
    assert 128 < n < 256
    out = hub.client("minilm").feature_extraction(text)
    np.testing.assert_allclose(out[0], reference.sentence_embedding(ref("minilm"), text), atol=TOL)


def test_feature_extraction_truncate(hub, ref):
    text = " ".join(f"token{i}" for i in range(200))  # far beyond 256 tokens
    assert len(ref("minilm").tokenizer.encode(text).ids) == 256  # the reference truncates at max_seq_length
    out = hub.client("minilm").feature_extraction(text, truncate=True)
    np.testing.assert_allclose(out[0], reference.sentence_embedding(ref("minilm"), text), atol=TOL)


def test_feature_extraction_on_feature_extraction_card(hub, ref):
    out = hub.client("minilm-features").feature_extraction([HAPPY, "Today is a sunny day"])
    assert out.shape == (2, 384)
    np.testing.assert_allclose(out[1], reference.sentence_embedding(ref("minilm-features"), "Today is a sunny day"), atol=TOL)


def test_feature_extraction_plain_encoder_gives_token_vectors(hub, ref):
    """No modules.json: the legacy pipeline's output, one vector per token (special tokens included)."""
    text = "Zürich café Müller says hello"
    out = hub.client("tiny-bert-plain").feature_extraction(text)
    expected = reference.token_embeddings(ref("tiny-bert-plain"), text)
    assert out.shape == (1, *expected.shape)
    np.testing.assert_allclose(out[0], expected, atol=TOL)


def all_at_once(call, inputs) -> list:
    """call(x) for every input from its own thread, started together: the worker may batch them
    into one padded forward pass."""
    results: dict[int, object] = {}
    errors = []

    def run(i):
        try:
            results[i] = call(inputs[i])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [results[i] for i in range(len(inputs))]


# Different lengths, so that a batch of them is padded.
VARIED_TEXTS = [f"Sentence {i}: " + "more words " * (3 * i) for i in range(8)]


def test_feature_extraction_concurrent_requests(hub, ref):
    """Requests that arrive together may share a batched forward pass; each gets its own answer."""
    client = hub.client("minilm")
    for text, out in zip(VARIED_TEXTS, all_at_once(client.feature_extraction, VARIED_TEXTS)):
        np.testing.assert_allclose(out[0], reference.sentence_embedding(ref("minilm"), text), atol=TOL)


def test_sentence_similarity(hub, ref):
    scores = hub.client("minilm").sentence_similarity(HAPPY, SIMILAR)
    expected = reference.sentence_similarity(ref("minilm"), HAPPY, SIMILAR)
    np.testing.assert_allclose(expected, HAPPY_SIMILARITIES, atol=1e-4)
    np.testing.assert_allclose(scores, expected, atol=TOL)


def test_pipeline_routes(hub, ref):
    """The routes the client uses with model ids: /pipeline/feature-extraction and /pipeline/sentence-similarity."""
    url = hub.model_url("minilm") + "/pipeline/feature-extraction"
    status, body = post(url, json.dumps({"inputs": [HAPPY]}).encode(), hub.alice)
    assert status == 200, body
    np.testing.assert_allclose(np.array(body)[0, :8], HAPPY_FIRST_8, atol=TOL)
    url = hub.model_url("minilm") + "/pipeline/sentence-similarity"
    status, body = post(url, json.dumps({"inputs": {"source_sentence": HAPPY, "sentences": SIMILAR}}).encode(), hub.alice)
    assert status == 200, body
    np.testing.assert_allclose(body, HAPPY_SIMILARITIES, atol=TOL)


# --- text-classification ----------------------------------------------------------------------

CLASSIFIERS = ["tiny-bert-sentiment", "tiny-distilbert-sentiment", "tiny-xlmr-sentiment"]
CLASSIFY_TEXT = "I like you. I love you"


def as_pairs(out):
    return [(o.label, o.score) for o in out]


def assert_same_ranking(got, expected, tol=TOL):
    assert [label for label, _ in got] == [label for label, _ in expected], (got, expected)
    for (_, a), (_, b) in zip(got, expected):
        assert close(a, b, tol), (got, expected)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_text_classification_default_is_every_label_softmaxed(hub, ref, name):
    for text in [CLASSIFY_TEXT, "Zürich café Müller"]:
        got = as_pairs(hub.client(name).text_classification(text))
        expected = reference.text_classification(ref(name), text)
        assert len(got) == len(fixtures.SENTIMENT_LABELS)
        assert_same_ranking(got, expected)
        assert close(sum(s for _, s in got), 1.0)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_text_classification_top_k(hub, ref, name):
    client = hub.client(name)
    for k in (1, 2):
        got = as_pairs(client.text_classification(CLASSIFY_TEXT, top_k=k))
        assert_same_ranking(got, reference.text_classification(ref(name), CLASSIFY_TEXT, top_k=k))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_text_classification_function_to_apply(hub, ref, function):
    got = as_pairs(hub.client("tiny-bert-sentiment").text_classification(CLASSIFY_TEXT, function_to_apply=function))
    assert_same_ranking(got, reference.text_classification(ref("tiny-bert-sentiment"), CLASSIFY_TEXT, function_to_apply=function))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_text_classification_concurrent_requests(hub, ref, name):
    """Padded batches: BERT's attention mask, DistilBERT's inverted one, RoBERTa's position ids."""
    client = hub.client(name)
    for text, out in zip(VARIED_TEXTS, all_at_once(client.text_classification, VARIED_TEXTS)):
        assert_same_ranking(as_pairs(out), reference.text_classification(ref(name), text))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_text_classification_list_of_inputs(hub, ref, name):
    """The Inference API also takes a list of texts (one padded batch): a ranking per text."""
    status, body = post(hub.model_url(name), json.dumps({"inputs": VARIED_TEXTS[:4]}).encode(), hub.alice)
    assert status == 200, body
    assert len(body) == 4
    for text, ranking in zip(VARIED_TEXTS, body):
        assert_same_ranking([(r["label"], r["score"]) for r in ranking], reference.text_classification(ref(name), text))


def test_text_classification_multi_label_uses_sigmoid(hub, ref):
    text = "The orchestra played at the stadium"
    got = as_pairs(hub.client("tiny-bert-topics").text_classification(text))
    expected = reference.text_classification(ref("tiny-bert-topics"), text)
    assert len(got) == len(fixtures.TOPIC_LABELS)
    assert_same_ranking(got, expected)
    assert not close(sum(s for _, s in got), 1.0, 1e-2)  # independent probabilities


# --- token-classification ---------------------------------------------------------------------


def entities(out):
    return [{k: v for k, v in dict(e).items() if v is not None} for e in out]


def assert_same_entities(got, expected):
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        for key in ("entity", "entity_group", "word", "start", "end", "index"):
            if key in e:
                assert g.get(key) == e[key], (key, g, e)
        assert close(g["score"], e["score"]), (g, e)


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
@pytest.mark.parametrize("text", NER_TEXTS)
def test_token_classification_aggregation(hub, ref, strategy, text):
    got = entities(hub.client("tiny-bert-ner").token_classification(text, aggregation_strategy=strategy))
    expected = reference.token_classification(ref("tiny-bert-ner"), text, strategy)
    assert expected, "the fixture should find entities here"
    assert_same_entities(got, expected)
    # start/end are character offsets into the input: "Müller" → "muller" still covers "Müller"
    for e in got:
        if strategy == "none":
            assert len(text[e["start"] : e["end"]]) == len(e["word"].removeprefix("##"))


def test_token_classification_strategies_differ_on_this_fixture(ref):
    """So that the parametrized test above can tell the strategies apart."""
    ck = ref("tiny-bert-ner")
    results = {s: reference.token_classification(ck, NER_TEXTS[0], s) for s in ["simple", "first", "average", "max"]}
    words = {s: [(e["entity_group"], e["word"], round(e["score"], 6)) for e in r] for s, r in results.items()}
    assert len({json.dumps(w) for w in words.values()}) == 4, words


def test_token_classification_default_is_simple(hub, ref):
    text = NER_TEXTS[0]
    got = entities(hub.client("tiny-bert-ner").token_classification(text))
    assert_same_entities(got, reference.token_classification(ref("tiny-bert-ner"), text, "simple"))


def test_token_classification_character_offsets(hub):
    text = "Zürich café Müller"
    got = entities(hub.client("tiny-bert-ner").token_classification(text, aggregation_strategy="none", ignore_labels=[]))
    spans = [text[e["start"] : e["end"]] for e in got]
    assert spans == ["Zürich", "café", "Müller"]
    assert [e["word"] for e in got] == ["zurich", "cafe", "muller"]


def test_token_classification_ignore_labels(hub, ref):
    text = NER_TEXTS[0]
    client = hub.client("tiny-bert-ner")
    everything = entities(client.token_classification(text, aggregation_strategy="none", ignore_labels=[]))
    expected = reference.token_classification(ref("tiny-bert-ner"), text, "none", ignore_labels=[])
    assert_same_entities(everything, expected)
    assert len(everything) == len(ref("tiny-bert-ner").encode(text).ids) - 2  # every token but [CLS] and [SEP]
    assert any(e["entity"] == "O" for e in everything)
    no_loc = entities(client.token_classification(text, aggregation_strategy="simple", ignore_labels=["O", "LOC"]))
    assert_same_entities(no_loc, reference.token_classification(ref("tiny-bert-ner"), text, "simple", ignore_labels=["O", "LOC"]))
    assert all(e["entity_group"] != "LOC" for e in no_loc)


# --- fill-mask ----------------------------------------------------------------------------------


def assert_same_fills(got, expected):
    assert [(g.token, g.token_str, g.sequence) for g in got] == [(e["token"], e["token_str"], e["sequence"]) for e in expected]
    for g, e in zip(got, expected):
        assert close(g.score, e["score"], 1e-6 + 1e-3 * e["score"])


@pytest.mark.parametrize("name", ["tiny-bert-mlm", "tiny-distilbert-mlm"])
def test_fill_mask_default_top_5(hub, ref, name):
    got = hub.client(name).fill_mask(MASKED)
    assert len(got) == 5
    assert_same_fills(got, reference.fill_mask(ref(name), MASKED))


def test_fill_mask_top_k_and_targets(hub, ref):
    client = hub.client("tiny-bert-mlm")
    assert_same_fills(client.fill_mask(MASKED, top_k=2), reference.fill_mask(ref("tiny-bert-mlm"), MASKED, top_k=2))
    targets = ["capital", "city", "village"]
    got = client.fill_mask(MASKED, targets=targets)
    assert len(got) == 3
    assert_same_fills(got, reference.fill_mask(ref("tiny-bert-mlm"), MASKED, targets=targets))
    assert_same_fills(client.fill_mask(MASKED, targets=targets, top_k=1), reference.fill_mask(ref("tiny-bert-mlm"), MASKED, targets=targets, top_k=1))


# --- text-generation ----------------------------------------------------------------------------


def greedy(ref, name, prompt=None, **kw):
    g = reference.greedy(ref(name), prompt or PROMPT[name], **kw)
    assert min(g.margins) > 1e-3, "a near-tie in the reference: pick another prompt"
    return g


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_greedy_defaults(hub, ref, name):
    """TGI defaults: 20 new tokens, greedy, the prompt not repeated."""
    g = greedy(ref, name, max_new_tokens=20)
    assert g.finish_reason == "length"
    assert hub.client(name).text_generation(PROMPT[name]) == reference.decode(ref(name), g.ids)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_details(hub, ref, name):
    g = greedy(ref, name, max_new_tokens=7)
    out = hub.client(name).text_generation(PROMPT[name], max_new_tokens=7, details=True)
    assert out.generated_text == reference.decode(ref(name), g.ids)
    d = out.details
    assert d.finish_reason == "length"
    assert d.generated_tokens == 7
    assert d.seed is None  # greedy
    assert [t.id for t in d.tokens] == g.ids
    assert [t.text for t in d.tokens] == [reference.decode(ref(name), [i]) for i in g.ids]
    assert not any(t.special for t in d.tokens)
    for t, lp in zip(d.tokens, g.logprobs):
        assert close(t.logprob, lp, 1e-3), (t, lp)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_return_full_text(hub, ref, name):
    g = greedy(ref, name, max_new_tokens=4)
    text = hub.client(name).text_generation(PROMPT[name], max_new_tokens=4, return_full_text=True)
    assert text == PROMPT[name] + reference.decode(ref(name), g.ids)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_ends_at_eos(hub, ref, name):
    g = greedy(ref, name, fixtures.EOS_PROMPT, max_new_tokens=20)
    assert g.finish_reason == "eos_token" and len(g.ids) >= 2  # the fixture makes EOS reachable, but not at once
    out = hub.client(name).text_generation(fixtures.EOS_PROMPT, max_new_tokens=20, details=True)
    assert out.generated_text == reference.decode(ref(name), g.ids)
    assert out.details.finish_reason == "eos_token"
    ids = [t.id for t in out.details.tokens]
    # TGI lists the EOS token itself (special) in details; it is never part of the text.
    assert ids in (g.ids, g.ids + [fixtures.GPT2_EOS])
    assert out.details.generated_tokens == len(ids)


def pick_stop(ck, ids):
    """A stop sequence that first appears at the end of token k (k ≥ 2): (k, stop, text up to it)."""
    for k in range(2, len(ids)):
        piece = reference.decode(ck, [ids[k]]).strip()
        upto = reference.decode(ck, ids[: k + 1])
        if len(piece) >= 3 and upto.endswith(piece) and piece not in reference.decode(ck, ids[:k]):
            return k, piece, upto
    raise AssertionError("no usable stop sequence in this continuation")


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_stop_sequence(hub, ref, name):
    prompt = STOP_PROMPT[name]
    g = greedy(ref, name, prompt, max_new_tokens=20)
    k, stop, upto = pick_stop(ref(name), g.ids)
    client = hub.client(name)
    out = client.text_generation(prompt, max_new_tokens=20, stop=["never appears here", stop], details=True)
    assert out.generated_text == upto  # TGI keeps the stop sequence in the text
    assert out.generated_text.endswith(stop)
    assert out.details.finish_reason == "stop_sequence"
    assert out.details.generated_tokens == k + 1
    out = client.text_generation(prompt, max_new_tokens=20, stop=["never appears here"], details=True)
    assert out.details.finish_reason == "length"
    assert out.generated_text == reference.decode(ref(name), g.ids)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_repetition_penalty(hub, ref, name):
    prompt = STOP_PROMPT[name]
    plain = greedy(ref, name, prompt, max_new_tokens=20)
    penalized = greedy(ref, name, prompt, max_new_tokens=20, repetition_penalty=1.3)
    assert penalized.ids != plain.ids  # the fixture is repetitive enough for the penalty to matter
    text = hub.client(name).text_generation(prompt, max_new_tokens=20, repetition_penalty=1.3)
    assert text == reference.decode(ref(name), penalized.ids)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_sampling_is_reproducible_with_a_seed(hub, ref, name):
    client = hub.client(name)
    prompt = PROMPT[name]

    def sample(seed, **kw):
        return client.text_generation(prompt, max_new_tokens=10, do_sample=True, seed=seed, details=True, **kw)

    a, b, c = sample(42), sample(42), sample(7)
    assert a.generated_text == b.generated_text
    assert a.details.seed == 42
    assert a.details.generated_tokens == 10
    assert a.generated_text != c.generated_text  # near-uniform over 50k tokens: seeds differ
    greedy_text = reference.decode(ref(name), greedy(ref, name, max_new_tokens=10).ids)
    assert a.generated_text != greedy_text
    # temperature / top_k / top_p alone turn sampling on (TGI); each is accepted and reproducible.
    for kw in ({"temperature": 0.7}, {"top_p": 0.9}, {"top_k": 50}, {"temperature": 1.3, "top_k": 20, "top_p": 0.95, "repetition_penalty": 1.2}):
        x = client.text_generation(prompt, max_new_tokens=10, seed=3, **kw)
        assert x != greedy_text, kw
        assert x == client.text_generation(prompt, max_new_tokens=10, seed=3, **kw), kw
    # Keeping only the best token is greedy again, whatever the seed.
    assert sample(5, top_k=1).generated_text == greedy_text
    assert sample(6, top_p=1e-6).generated_text == greedy_text


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_stream(hub, ref, name):
    client = hub.client(name)  # kept alive while the stream is read
    g = greedy(ref, name, max_new_tokens=8)
    pieces = list(client.text_generation(PROMPT[name], max_new_tokens=8, stream=True))
    assert len(pieces) == 8
    assert pieces == [reference.decode(ref(name), [i]) for i in g.ids]
    assert "".join(pieces) == client.text_generation(PROMPT[name], max_new_tokens=8)


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_stream_details(hub, ref, name):
    client = hub.client(name)
    g = greedy(ref, name, max_new_tokens=6)
    events = list(client.text_generation(PROMPT[name], max_new_tokens=6, stream=True, details=True))
    assert [e.token.id for e in events] == g.ids
    assert all(e.generated_text is None and e.details is None for e in events[:-1])
    last = events[-1]
    assert last.generated_text == reference.decode(ref(name), g.ids)
    assert last.details.finish_reason == "length"
    assert last.details.generated_tokens == 6


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_stream_stop_sequence(hub, ref, name):
    client = hub.client(name)
    g = greedy(ref, name, STOP_PROMPT[name], max_new_tokens=20)
    k, stop, upto = pick_stop(ref(name), g.ids)
    events = list(client.text_generation(STOP_PROMPT[name], max_new_tokens=20, stop=[stop], stream=True, details=True))
    assert [e.token.id for e in events] == g.ids[: k + 1]
    assert "".join(e.token.text for e in events) == upto
    assert events[-1].generated_text == upto
    assert events[-1].details.finish_reason == "stop_sequence"


def test_generation_stream_ends_at_eos(hub, ref):
    name = "tiny-gpt2"
    client = hub.client(name)
    g = greedy(ref, name, fixtures.EOS_PROMPT, max_new_tokens=20)
    events = list(client.text_generation(fixtures.EOS_PROMPT, max_new_tokens=20, stream=True, details=True))
    assert events[-1].details.finish_reason == "eos_token"
    assert "".join(e.token.text for e in events if not e.token.special) == reference.decode(ref(name), g.ids)
    assert events[-1].generated_text == reference.decode(ref(name), g.ids)


# --- endpoint info, health, access ------------------------------------------------------------


# huggingface_hub 2.4.0 only sends health_check() and get_endpoint_info() with provider="hf-inference"
# given explicitly (the task methods switch to it by themselves for a URL).
HF_INFERENCE = {"provider": "hf-inference"}


@pytest.mark.parametrize("name", ["tiny-gpt2", "minilm"])
def test_endpoint_info_and_health(hub, name):
    client = hub.client(name, **HF_INFERENCE)
    assert client.health_check() is True
    info = client.get_endpoint_info()
    assert isinstance(info, dict) and info
    assert hub.client("does-not-exist", **HF_INFERENCE).health_check() is False


def test_private_model_needs_a_token_that_can_read_it(hub, ref):
    text = CLASSIFY_TEXT
    expected = reference.text_classification(ref(PRIVATE_MODEL), text)
    assert_same_ranking(as_pairs(hub.client(PRIVATE_MODEL).text_classification(text)), expected)
    with pytest.raises(HfHubHTTPError) as anonymous:
        hub.client(PRIVATE_MODEL, token=None).text_classification(text)
    assert anonymous.value.response.status_code in (401, 404)
    with pytest.raises(HfHubHTTPError) as other_user:
        hub.client(PRIVATE_MODEL, token=hub.bob).text_classification(text)
    assert other_user.value.response.status_code in (403, 404)
    with pytest.raises(HfHubHTTPError):
        hub.client(PRIVATE_MODEL, token=None, **HF_INFERENCE).get_endpoint_info()
    assert hub.client(PRIVATE_MODEL, token=None, **HF_INFERENCE).health_check() is False
    assert hub.client(PRIVATE_MODEL, token=hub.bob, **HF_INFERENCE).health_check() is False
    assert hub.client(PRIVATE_MODEL, **HF_INFERENCE).health_check() is True
    # A public model needs no token.
    assert hub.client("tiny-bert-sentiment", token=None).text_classification(text)


# --- errors -----------------------------------------------------------------------------------


def test_a_refused_request_leaves_the_connection_usable(hub):
    """huggingface_hub reuses pooled connections: a refusal (here, no token for a private model)
    must not close the connection under the client's next request."""
    import socket

    body = json.dumps({"inputs": "x" * 300_000}).encode()
    request = (f"POST /models/alice/{PRIVATE_MODEL} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    port = int(hub.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for attempt in range(3):
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                assert chunk, f"the hub closed the connection after refusal {attempt}"
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            assert head.split(b" ")[1] == b"401", head
            length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
            while len(rest) < length:
                rest += s.recv(65536)


def test_unknown_model(hub):
    with pytest.raises(HfHubHTTPError) as e:
        hub.client("does-not-exist").text_classification("hello")
    assert e.value.response.status_code == 404


@pytest.mark.parametrize(
    "name, body",
    [
        ("tiny-bert-sentiment", b"this is not JSON"),
        ("tiny-bert-sentiment", b'{"input": "no inputs key"}'),
        ("tiny-bert-sentiment", b'{"inputs": 42}'),
        ("tiny-bert-mlm", b'{"inputs": "a sentence without the mask token"}'),
        ("tiny-bert-ner", b'{"inputs": "Berlin", "parameters": {"aggregation_strategy": "sideways"}}'),
        ("tiny-gpt2", b'{"inputs": "Hello", "parameters": {"max_new_tokens": -3}}'),
        ("minilm", b'{"inputs": {"source_sentence": "no sentences"}}'),
    ],
)
def test_malformed_input_is_a_json_4xx(hub, name, body):
    status, answer = post(hub.model_url(name), body, hub.alice)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"], answer


def test_wrong_task_for_the_model_is_a_4xx(hub):
    status, answer = post(hub.model_url("tiny-bert-sentiment") + "/pipeline/text-generation", b'{"inputs": "Hello"}', hub.alice)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and answer.get("error"), answer


def test_hub_and_worker_still_serve_after_errors(hub, ref):
    post(hub.model_url("tiny-bert-sentiment"), b"\xff\xfe garbage", hub.alice)
    post(hub.model_url("tiny-gpt2"), b'{"inputs": "x", "parameters": {"max_new_tokens": "many"}}', hub.alice)
    got = as_pairs(hub.client("tiny-bert-sentiment").text_classification(CLASSIFY_TEXT))
    assert_same_ranking(got, reference.text_classification(ref("tiny-bert-sentiment"), CLASSIFY_TEXT))
    with urllib.request.urlopen(hub.url + "/api/models/alice/tiny-gpt2", timeout=30) as r:
        assert json.loads(r.read())["id"] == "alice/tiny-gpt2"


def test_the_hub_request_id_follows_the_request_into_the_worker(hub, workdir):
    """A request through the hub carries its X-Request-Id into the worker's log and answer, so
    one request can be followed across both processes."""
    request_id = "trace-me-7f3a9c"
    req = urllib.request.Request(
        f"{hub.url}/models/alice/minilm/pipeline/feature-extraction",
        data=json.dumps({"inputs": "follow me"}).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        assert r.headers.get("x-request-id") == request_id
    log = (workdir / "inference-worker.log").read_text(errors="replace")
    lines = [line for line in log.splitlines() if request_id in line]
    assert any("status=200" in line for line in lines), f"no access line with the hub's request id in the worker log: {lines}"
