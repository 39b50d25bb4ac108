"""The web UI in real headless Chromium (Debian's, driven by Playwright) against a real
`hub-server serve`: sign up, create a repo, upload files, read the rendered card, browse files
and history, create a token and use it with huggingface_hub; a hostile card stays inert.
Screenshots of the home, repo, files, commit and settings pages go to $HUB_SCREENSHOT_DIR.

Run by scripts/test with HUB_BROWSER_ENDPOINT set to a fresh hub."""

import os
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from playwright.sync_api import sync_playwright

ENDPOINT = os.environ["HUB_BROWSER_ENDPOINT"].rstrip("/")
SHOTS = Path(os.environ.get("HUB_SCREENSHOT_DIR", "screenshots"))
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries hosts this sandbox cannot reach.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

CARD = """---
license: apache-2.0
pipeline_tag: fill-mask
library_name: transformers
tags:
- browser-test
---
# Browser Model

A tiny model uploaded **from the browser**.

| metric | value |
|---|---|
| accuracy | 0.93 |

<script>window.__pwned = 'script'</script>
<img src="x" onerror="window.__pwned = 'onerror'">
<iframe src="javascript:window.top.__pwned = 'iframe'"></iframe>

[click me](javascript:window.__pwned='link')
"""


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_user_publishes_a_model_from_the_browser(browser, tmp_path):
    user = f"web{uuid.uuid4().hex[:8]}"
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # Sign up: the header then shows the user.
    page.goto(f"{ENDPOINT}/join")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "a long enough password")
    page.click("form[action='/join'] button[type=submit]")
    assert page.inner_text("nav.account").find(user) >= 0

    # Create a repository.
    page.goto(f"{ENDPOINT}/new")
    page.fill("input[name=name]", "browser-model")
    page.click("form[action='/new'] button[type=submit]")
    assert page.url == f"{ENDPOINT}/{user}/browser-model"

    # Upload a card (with hostile bits) and a config through the upload page.
    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": 32}\n')
    page.goto(f"{ENDPOINT}/{user}/browser-model/upload")
    page.set_input_files("input[name=file]", [str(tmp_path / "README.md"), str(tmp_path / "config.json")])
    page.fill("input[name=message]", "Add the card from the browser")
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    assert "/tree/main" in page.url
    assert page.locator("table.files").inner_text().count("config.json") == 1
    shot(page, "files")

    # The card renders, and nothing in it runs.
    page.goto(f"{ENDPOINT}/{user}/browser-model")
    assert page.inner_text("article.card h1") == "Browser Model"
    assert page.locator("article.card table").count() == 1
    card_html = page.inner_html("article.card")
    for bad in ("<script", "onerror=", 'href="javascript:', 'src="javascript:', "<iframe"):
        assert bad not in card_html, bad
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned === undefined"), page.evaluate("window.__pwned")
    assert "license: apache-2.0" in page.inner_text(".repo-head")
    shot(page, "repo")

    # History and the commit's diff.
    page.click("text=History")
    page.click("text=Add the card from the browser")
    assert "+# Browser Model" in page.inner_text("section.diff pre") or "+# Browser Model" in page.content()
    shot(page, "commit")

    # Settings page (owners only).
    page.goto(f"{ENDPOINT}/{user}/browser-model/settings")
    assert page.locator("text=Delete this repository").count() == 1
    shot(page, "settings")

    # A token made in the browser works with huggingface_hub.
    page.goto(f"{ENDPOINT}/settings/tokens")
    page.fill("input[name=name]", "from-the-browser")
    page.select_option("select[name=role]", "write")
    page.click("text=Create token")
    token = page.inner_text("#new-token").strip()
    assert token.startswith("hf_")
    api = HfApi(endpoint=ENDPOINT, token=token)
    assert api.whoami()["name"] == user
    api.upload_file(path_or_fileobj=b"made with a browser token", path_in_repo="notes.txt", repo_id=f"{user}/browser-model")
    page.goto(f"{ENDPOINT}/{user}/browser-model/tree/main")
    assert "notes.txt" in page.inner_text("table.files")

    # The home page lists it.
    page.goto(f"{ENDPOINT}/")
    assert f"{user}/browser-model" in page.inner_text("main")
    shot(page, "home")
    page.close()


def test_a_private_repo_is_a_404_page_for_visitors(browser):
    page = browser.new_page()
    response = page.goto(f"{ENDPOINT}/nobody/does-not-exist")
    assert response.status == 404
    assert "Nothing here" in page.inner_text("main")
    page.close()
