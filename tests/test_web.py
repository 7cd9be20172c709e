"""The web chat page in headless Chromium (Debian's `chromium`, driven by playwright-python).

Nothing is installed at run time: without the browser or the playwright package the tests skip and say why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from serve_helpers import LiveServer, ScriptedDecoder, SlowDecoder, make_engine, png_bytes

from tinygpt4.serve.api import ServeSettings, create_app

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
# Set TINYGPT4_SCREENSHOT_DIR to keep a screenshot of the page (docs/web_chat.png was made this way).
SHOT_DIR = os.environ.get("TINYGPT4_SCREENSHOT_DIR")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright-python is not installed "
                               "(pip install playwright; the browser itself comes from apt: chromium)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)", allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1100, "height": 720})
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, errors


def _open(page, url):
    page.goto(url)
    expect(page.locator("#status")).to_have_text("ready")


def _settings(page, max_tokens: int, temperature: float):
    page.click("#settings-toggle")
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", str(temperature))
    page.dispatch_event("#max-tokens", "change")
    page.click("#settings-toggle")


def _paste_png(page, data: bytes):
    page.evaluate("""(bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], "pasted.png", {type: "image/png"}));
        document.getElementById("input").dispatchEvent(new ClipboardEvent("paste", {clipboardData: dt}));
    }""", list(data))


def test_image_message_streams_an_answer(page, tiny_tokenizer, tmp_path):
    slow = SlowDecoder(make_engine(tiny_tokenizer, vision=True), delay=0.03)
    with LiveServer(create_app(slow, ServeSettings(moderation="off"))) as srv:
        sent = []
        page.on("request", lambda r: sent.append(r.post_data) if r.url.endswith("/chat/completions") else None)
        _open(page, srv.url)
        _settings(page, max_tokens=40, temperature=0)  # greedy: the same answer every run
        img = tmp_path / "red.png"
        img.write_bytes(png_bytes(64, (220, 40, 40)))
        page.set_input_files("#file", str(img))
        _paste_png(page, png_bytes(64, (40, 80, 220)))
        expect(page.locator("#previews img")).to_have_count(2)
        page.fill("#input", "What colours are these two squares?")
        page.press("#input", "Enter")

        page.wait_for_selector(".msg.assistant.streaming")
        expect(page.locator(".msg.assistant .content")).not_to_have_text("")
        early = page.text_content(".msg.assistant .content")
        assert page.is_visible("#stop") and not page.is_visible("#send")
        page.wait_for_selector(".msg.assistant:not(.streaming)", timeout=60_000)
        final = page.text_content(".msg.assistant .content")
        assert len(final) > len(early)  # it arrived in pieces, not all at once
        assert page.locator(".msg.user .images img").count() == 2
        assert page.locator("#previews img").count() == 0
        if SHOT_DIR:
            Path(SHOT_DIR).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOT_DIR) / "web_chat.png"))

        body = json.loads(sent[0])
        parts = body["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
        assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[:2])
        assert body["stream"] is True and body["max_tokens"] == 40 and body["temperature"] == 0

        page.reload()  # history survives a reload
        page.wait_for_selector(".msg.assistant")
        assert page.text_content(".msg.assistant .content") == final
        assert page.locator(".msg.user .images img").count() == 2


def test_markdown_is_rendered_and_html_is_inert(page, tiny_tokenizer):
    answer = ("**Bold** and `code` <img src=x onerror=\"window.pwned=1\"> "
              "[bad](javascript:window.pwned=2) [ok](https://example.com)\n\n- one\n- two\n\n```\n<b>raw</b>\n```")
    with LiveServer(create_app(ScriptedDecoder(tiny_tokenizer, answer), ServeSettings(moderation="off"))) as srv:
        _open(page, srv.url)
        _settings(page, max_tokens=400, temperature=0)
        page.fill("#input", "format something")
        page.click("#send")
        page.wait_for_selector(".msg.assistant:not(.streaming) li")
        content = page.locator(".msg.assistant .content")
        assert content.locator("strong").inner_text() == "Bold"
        assert content.locator("code").first.inner_text() == "code"
        assert content.locator("li").count() == 2
        assert content.locator("img").count() == 0 and content.locator("b").count() == 0
        assert "<img src=x" in content.inner_text() and "<b>raw</b>" in content.inner_text()
        hrefs = content.locator("a").evaluate_all("as => as.map(a => a.href)")
        assert hrefs == ["https://example.com/"]
        assert page.evaluate("window.pwned === undefined")


def test_stop_regenerate_new_chat_and_errors(page, tiny_tokenizer):
    slow = SlowDecoder(make_engine(tiny_tokenizer), delay=0.05)
    with LiveServer(create_app(slow, ServeSettings(moderation="off", api_key="sk-page"))) as srv:
        _open(page, srv.url)
        page.fill("#input", "hello")
        page.press("#input", "Enter")
        page.wait_for_selector(".msg.assistant.error")  # no key yet: a visible error, not a silent failure
        assert "HTTP 401" in page.text_content(".msg.assistant .error-text")
        assert page.is_visible("#banner")

        page.click("#settings-toggle")
        page.fill("#api-key", "sk-page")
        page.dispatch_event("#api-key", "change")
        page.fill("#max-tokens", "150")
        page.dispatch_event("#max-tokens", "change")
        page.click("#regenerate")
        expect(page.locator(".msg.assistant .content")).not_to_have_text("")
        page.click("#stop")
        page.wait_for_selector(".msg.assistant:not(.streaming) .note")
        assert page.text_content(".msg.assistant .note") == "(stopped)"
        assert page.locator(".msg.assistant").count() == 1  # the failed answer was replaced

        page.click("#new-chat")
        assert page.locator(".msg").count() == 0 and page.locator("#chat-list li").count() == 2
        page.click("#chat-list li:nth-child(2) button.open")
        assert page.locator(".msg.user").count() == 1
