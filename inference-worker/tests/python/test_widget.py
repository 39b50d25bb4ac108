"""The model page's inference widget in real headless Chromium (Debian's, driven by Playwright):
the MiniLM sentence-similarity page draws a bar per sentence with the worker's scores, the
GPT-2 page streams generated text into the page, and a signed-in user's private model answers
through the hub's session → worker grant. Screenshots go to $HUB_SCREENSHOT_DIR."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HUB_CHROMIUM") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("HUB_SCREENSHOT_DIR") or Path(__file__).resolve().parents[3] / "screenshots")
# Without the background-networking flags Chromium tries hosts this sandbox cannot reach.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]



@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # A missing browser fails these tests (a skip would pass the suite without the widget tested).
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: install it (Debian: apt-get install chromium) or set HUB_CHROMIUM"

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def post(url: str, body: dict) -> object:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def test_similarity_widget_draws_the_workers_scores(browser, hub):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{hub.url}/alice/minilm")
    widget = page.locator("#widget")
    assert widget.get_attribute("data-task") == "sentence-similarity"
    # The card's widget example fills the form.
    assert page.input_value("#widget input[name=source]") == "That is a happy person"
    page.click("#widget button[type=submit]")
    page.wait_for_selector("#widget .bar-row", timeout=120_000)
    rows = page.locator("#widget .bar-row")
    assert rows.count() == 3
    labels = [rows.nth(i).locator(".bar-label").inner_text() for i in range(3)]
    assert labels == ["That is a happy dog", "That is a very happy person", "Today is a sunny day"]
    # The page shows what the API answers for the same input.
    expected = post(f"{hub.url}/models/alice/minilm", {"inputs": {"source_sentence": "That is a happy person", "sentences": labels}})
    shown = [rows.nth(i).locator(".bar-score").inner_text() for i in range(3)]
    assert shown == [f"{s * 100:.1f}%" for s in expected]
    assert "Computed in" in page.inner_text("#widget .widget-status")
    page.screenshot(path=str(SHOTS / "widget-similarity.png"), full_page=True)


def test_generation_widget_streams_text_into_the_page(browser, hub):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{hub.url}/alice/tiny-gpt2")
    assert page.locator("#widget").get_attribute("data-task") == "text-generation"
    assert page.input_value("#widget textarea[name=inputs]") == "Once upon a time"
    page.fill("#widget input[name=max_new_tokens]", "120")
    # Record the generated text each time the page changes: streamed, it is seen part-way.
    page.evaluate("""() => {
        window.__seen = [];
        new MutationObserver(() => {
            const t = document.querySelector('#widget .generated .new-text');
            if (t) window.__seen.push(t.textContent);
        }).observe(document.querySelector('#widget .widget-output'), { childList: true, subtree: true, characterData: true });
    }""")
    page.click("#widget button[type=submit]")
    page.wait_for_function("() => document.querySelector('#widget .widget-status').textContent.startsWith('Computed')", timeout=120_000)
    generated = page.inner_text("#widget .generated .new-text")
    expected = post(f"{hub.url}/models/alice/tiny-gpt2", {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 120}})
    assert generated == expected[0]["generated_text"]
    assert page.inner_text("#widget .generated b") == "Once upon a time"
    partial = [t for t in page.evaluate("window.__seen") if t and t != generated]
    assert partial and all(generated.startswith(t) for t in partial), "the text should appear as it streams, not at once"
    page.screenshot(path=str(SHOTS / "widget-generation.png"), full_page=True)


def test_a_signed_in_user_uses_the_widget_of_their_private_model(browser, hub, models):
    """The session has no token to forward: the hub hands the worker a read grant."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{hub.url}/join")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "a long enough password")
    page.click("form[action='/join'] button[type=submit]")
    page.goto(f"{hub.url}/new")
    page.fill("input[name=name]", "private-ner")
    page.check("input[name=private]")
    page.click("form[action='/new'] button[type=submit]")
    folder = models["tiny-bert-ner"]
    page.goto(f"{hub.url}/carol/private-ner/upload")
    page.set_input_files("input[name=file]", [str(p) for p in sorted(folder.iterdir()) if p.is_file()])
    page.fill("input[name=message]", "Add a model from the browser")
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    page.screenshot(path=str(SHOTS / "widget-upload.png"), full_page=True)
    assert "/tree/main" in page.url, page.inner_text("main")
    # Anonymous callers don't see it; its owner's widget works.
    try:
        post(f"{hub.url}/models/carol/private-ner", {"inputs": "hi"})
        raise AssertionError("a private model answered an anonymous caller")
    except urllib.error.HTTPError as e:
        assert e.code in (401, 404)
    page.goto(f"{hub.url}/carol/private-ner")
    assert page.locator("#widget").get_attribute("data-task") == "token-classification"
    page.fill("#widget textarea[name=inputs]", "My name is Wolfgang and I live in Berlin")
    page.click("#widget button[type=submit]")
    page.wait_for_function("() => document.querySelector('#widget .widget-status').textContent.startsWith('Computed')", timeout=120_000)
    text = page.locator("#widget .entities").inner_text()
    assert "Wolfgang" in text and "Berlin" in text, text
    page.screenshot(path=str(SHOTS / "widget-private-ner.png"), full_page=True)
