"""summarization, translation and text2text-generation on T5 (encoder-decoder) through the hub:
huggingface_hub's InferenceClient where it has a method for the task, raw POSTs for the wire format,
every answer checked against the numpy reference T5's greedy output (reference.t5_greedy) on the
tiny fixture checkpoints (fixtures.T5_MODELS)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from huggingface_hub.errors import HfHubHTTPError

import fixtures
import reference
from test_inference import all_at_once, post

TASK = {"tiny-t5-summarize": "summarization", "tiny-t5-translate": "translation", "tiny-t5-text2text": "text2text-generation"}
KEY = {"summarization": "summary_text", "translation": "translation_text", "text2text-generation": "generated_text"}
T5S = list(TASK)
WITH_PREFIX = ["tiny-t5-summarize", "tiny-t5-translate"]  # the two with task_specific_params
EOS_MODELS = list(fixtures.T5_EOS_INPUT)  # the two whose EOS row the fixture makes reachable

# The worker computes in f32; the reference's top-1 must beat its top-2 by more than f32 noise
# (transformers' float32 T5 is within 8e-4 of the reference's logits on these fixtures).
MARGIN = 5e-3


_generations: dict[tuple[str, str, int], reference.Generation] = {}


def expected(ref, name: str, text: str, max_new_tokens: int = 20) -> reference.Generation:
    key = (name, text, max_new_tokens)
    if key not in _generations:  # the 512-token input takes the reference half a second
        _generations[key] = reference.t5_greedy(ref(name), text, TASK[name], max_new_tokens)
    g = _generations[key]
    assert min(g.margins) > MARGIN, "a near-tie in the reference: pick another input"
    return g


def text_of(ref, name: str, g: reference.Generation) -> str:
    return reference.decode(ref(name), g.ids)


def assert_same_text(hub, ref, name: str, text: str, g: reference.Generation, got: str):
    """got == the reference's text; if not, say after how many new tokens the worker first differs
    (asking again with smaller max_new_tokens)."""
    want = text_of(ref, name, g)
    if got == want:
        return
    first = None
    for n in range(1, len(g.ids) + 1):
        if ask(hub, name, text, generate_parameters={"max_new_tokens": n}) != reference.decode(ref(name), g.ids[:n]):
            first = n
            break
    raise AssertionError(f"{got!r} != {want!r}: the worker's output first differs at new token {first}")


def ask(hub, name: str, text: str, **parameters) -> str:
    """The generated text, through the InferenceClient method of the model's task (text2text-generation
    has none: a raw POST)."""
    task = TASK[name]
    client = hub.client(name)
    if task == "summarization":
        return client.summarization(text, **parameters).summary_text
    if task == "translation":
        return client.translation(text, **parameters).translation_text
    status, answer = post(hub.model_url(name), json.dumps({"inputs": text, "parameters": parameters}).encode(), hub.alice)
    assert status == 200, (status, answer)
    return answer[0]["generated_text"]


# transformers' T5Attention._relative_position_bucket(relative_position, bidirectional, 32, 128),
# pinned, so that a mistake shared by the reference and the worker can't go unnoticed. The encoder
# is bidirectional; the decoder's self-attention is causal (num_buckets not halved: exact up to 15
# tokens back), so decoder outputs past 9 new tokens tell the two apart.
RELATIVE = [-600, -128, -127, -100, -64, -63, -40, -32, -31, -17, -16, -15, -9, -8, -7, -1, 0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 63, 64, 100, 127, 128, 600]
BIDIRECTIONAL = [15, 15, 15, 15, 14, 13, 12, 12, 11, 10, 10, 9, 8, 8, 7, 1, 0, 17, 23, 24, 24, 25, 26, 26, 27, 28, 29, 30, 31, 31, 31, 31]
CAUSAL = [31, 31, 31, 30, 26, 26, 23, 21, 21, 16, 16, 15, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_reference_position_buckets_are_transformers():
    assert reference.t5_relative_position_bucket(np.array(RELATIVE), True, 32, 128).tolist() == BIDIRECTIONAL
    assert reference.t5_relative_position_bucket(np.array(RELATIVE), False, 32, 128).tolist() == CAUSAL


def test_fixture_outputs_are_not_degenerate(ref):
    """The random checkpoints must tell a right answer from a wrong one: outputs that differ from
    input to input and use more than one token, EOS reachable but not at once."""
    for name in T5S:
        outs = [expected(ref, name, text).ids for text in fixtures.T5_INPUTS[name]]
        assert len({tuple(o) for o in outs}) == len(outs), name
        assert max(len(set(o)) for o in outs) >= 5, (name, outs)
    for name in EOS_MODELS:
        g = expected(ref, name, fixtures.T5_EOS_INPUT[name])
        assert g.finish_reason == "eos_token" and 2 <= len(g.ids) < 20, (name, g.ids)


@pytest.mark.parametrize("name, text", [(n, t) for n in T5S for t in fixtures.T5_INPUTS[n]])
def test_greedy_output_matches_the_reference(hub, ref, name, text):
    """Defaults: greedy, 20 new tokens, the task prefix from config.json (summarization,
    translation), the output decoded without special tokens."""
    g = expected(ref, name, text)
    assert g.finish_reason == "length" and len(g.ids) == 20
    assert_same_text(hub, ref, name, text, g, ask(hub, name, text))


@pytest.mark.parametrize("name", WITH_PREFIX)
def test_task_prefix_from_task_specific_params(hub, ref, name):
    ck = ref(name)
    prefix = {"summarization": "summarize: ", "translation": "translate English to German: "}[TASK[name]]
    assert reference.t5_prefix(ck, TASK[name]) == prefix
    text = fixtures.T5_INPUTS[name][0]
    with_prefix = text_of(ref, name, expected(ref, name, text))
    without = reference.decode(ck, reference.t5_greedy(ck, text, "text2text-generation").ids)
    assert with_prefix != without  # so that a worker that drops the prefix fails here
    assert ask(hub, name, text) == with_prefix


@pytest.mark.parametrize("name", T5S)
def test_max_new_tokens_in_generate_parameters(hub, ref, name):
    text = fixtures.T5_INPUTS[name][0]
    full = text_of(ref, name, expected(ref, name, text))
    short = expected(ref, name, text, max_new_tokens=5)
    assert short.finish_reason == "length" and len(short.ids) == 5
    got = ask(hub, name, text, generate_parameters={"max_new_tokens": 5})
    assert got == text_of(ref, name, short)
    assert len(got) < len(full) and full.startswith(got)


def test_max_new_tokens_at_the_top_of_parameters(hub, ref):
    """parameters.max_new_tokens applies when generate_parameters has none; generate_parameters wins."""
    name = "tiny-t5-summarize"
    text = fixtures.T5_INPUTS[name][0]
    url = hub.model_url(name)
    status, answer = post(url, json.dumps({"inputs": text, "parameters": {"max_new_tokens": 3}}).encode(), hub.alice)
    assert status == 200, answer
    assert answer == [{"summary_text": text_of(ref, name, expected(ref, name, text, 3))}]
    body = {"inputs": text, "parameters": {"max_new_tokens": 3, "generate_parameters": {"max_new_tokens": 6}}}
    status, answer = post(url, json.dumps(body).encode(), hub.alice)
    assert status == 200, answer
    assert answer == [{"summary_text": text_of(ref, name, expected(ref, name, text, 6))}]


@pytest.mark.parametrize("name", EOS_MODELS)
def test_generation_ends_at_eos(hub, ref, name):
    text = fixtures.T5_EOS_INPUT[name]
    g = expected(ref, name, text)
    assert g.finish_reason == "eos_token" and 2 <= len(g.ids) < 20
    assert ask(hub, name, text) == text_of(ref, name, g)
    # Cut before the EOS step, max_new_tokens still decides.
    assert ask(hub, name, text, generate_parameters={"max_new_tokens": 1}) == text_of(ref, name, expected(ref, name, text, 1))


@pytest.mark.parametrize("name", T5S)
def test_wire_format(hub, ref, name):
    """The raw answer: a one-element list holding one object with the task's key, and the
    /pipeline/{task} route answers the same."""
    text = fixtures.T5_INPUTS[name][0]
    want = [{KEY[TASK[name]]: text_of(ref, name, expected(ref, name, text))}]
    body = json.dumps({"inputs": text}).encode()
    for url in (hub.model_url(name), f"{hub.model_url(name)}/pipeline/{TASK[name]}"):
        status, answer = post(url, body, hub.alice)
        assert (status, answer) == (200, want), url


@pytest.mark.parametrize("name", T5S)
def test_long_input_is_truncated_to_512_tokens(hub, ref, name):
    text = fixtures.T5_LONG_INPUT
    ck = ref(name)
    assert len(ck.encode(reference.t5_prefix(ck, TASK[name]) + text).ids) > 2 * reference.T5_MAX_INPUT
    g = expected(ref, name, text)
    assert len(g.prompt_ids) == reference.T5_MAX_INPUT and g.prompt_ids[-1] == fixtures.T5_EOS
    assert_same_text(hub, ref, name, text, g, ask(hub, name, text))


@pytest.mark.parametrize("name", T5S)
def test_concurrent_requests_to_one_model(hub, ref, name):
    """Each request gets its own answer (no decoder state shared between requests)."""
    texts = fixtures.T5_INPUTS[name] + [fixtures.T5_EOS_INPUT.get(name, "The weather today is"), fixtures.T5_LONG_INPUT] * 2
    got = all_at_once(lambda text: ask(hub, name, text), texts)
    assert got == [text_of(ref, name, expected(ref, name, text)) for text in texts]


def test_use_cache_false_in_config_json_changes_nothing(hub, ref):
    """The same weights with "use_cache": false in config.json (as saved after training with
    gradient checkpointing) give the same answers."""
    name = "tiny-t5-summarize"
    for text in fixtures.T5_INPUTS[name][:1] + [fixtures.T5_EOS_INPUT[name]]:
        g = expected(ref, name, text)
        assert hub.client("tiny-t5-summarize-no-cache").summarization(text).summary_text == text_of(ref, name, g)


@pytest.mark.parametrize("name", T5S)
def test_empty_input_is_a_json_4xx(hub, name):
    status, answer = post(hub.model_url(name), json.dumps({"inputs": "hello"}).encode(), hub.alice)
    assert status == 200, answer  # the model itself answers: the 4xx below is about the input
    status, answer = post(hub.model_url(name), json.dumps({"inputs": ""}).encode(), hub.alice)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"], answer
    if TASK[name] != "text2text-generation":
        with pytest.raises(HfHubHTTPError) as e:
            ask(hub, name, "")
        assert 400 <= e.value.response.status_code < 500
