"""The official `openai` SDK against a live server on loopback: the API must be a drop-in."""

from __future__ import annotations

import threading
import time

import pytest
from serve_helpers import LiveServer, SlowDecoder, data_url, make_engine, png_bytes

from tinygpt4.serve.api import ServeSettings, create_app

openai = pytest.importorskip("openai")

KEY = "sk-tinygpt4-test"
HELLO = [{"role": "user", "content": "Hello world"}]


@pytest.fixture(scope="module")
def server(tiny_tokenizer):
    engine = make_engine(tiny_tokenizer, vision=True)
    settings = ServeSettings(api_key=KEY, moderation="off", max_body_bytes=256 * 1024, max_image_bytes=64 * 1024,
                             max_n=4)
    with LiveServer(create_app(engine, settings)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_plain(client):
    r = client.chat.completions.create(model="tinygpt4", messages=HELLO, max_tokens=6, temperature=0)
    assert r.object == "chat.completion" and len(r.choices) == 1
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    models = client.models.list()
    assert [m.id for m in models.data] == [r.model]


def test_streaming_with_usage(client):
    plain = client.chat.completions.create(model="m", messages=HELLO, max_tokens=8, temperature=0)
    stream = client.chat.completions.create(model="m", messages=HELLO, max_tokens=8, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == \
        [plain.choices[0].finish_reason]


def test_image_parts(client):
    url = data_url(png_bytes(32, (20, 160, 40)))
    r = client.chat.completions.create(model="m", max_tokens=4, temperature=0, messages=[
        {"role": "system", "content": "You describe images."},
        {"role": "user", "content": [{"type": "text", "text": "Compare"},
                                     {"type": "image_url", "image_url": {"url": url}},
                                     {"type": "image_url", "image_url": {"url": url, "detail": "high"}}]}])
    text_only = client.chat.completions.create(model="m", max_tokens=4, temperature=0, messages=[
        {"role": "system", "content": "You describe images."},
        {"role": "user", "content": [{"type": "text", "text": "Compare"}]}])
    assert r.usage.prompt_tokens == text_only.usage.prompt_tokens + 2 * 4  # 4 placeholder tokens per image


def test_n_two(client):
    r = client.chat.completions.create(model="m", messages=HELLO, max_tokens=5, n=2, temperature=1.0, seed=3)
    assert [c.index for c in r.choices] == [0, 1]
    again = client.chat.completions.create(model="m", messages=HELLO, max_tokens=5, n=2, temperature=1.0, seed=3)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]


def test_stop_strings(client):
    full = client.chat.completions.create(model="m", messages=HELLO, max_tokens=12, temperature=0)
    text = full.choices[0].message.content
    candidates = [i for i in range(1, len(text) - 1) if text[i].isprintable() and text[i] != "\ufffd"]
    if not candidates:
        pytest.skip("no printable character to stop on in the random model's output")
    stop = text[candidates[0]]
    r = client.chat.completions.create(model="m", messages=HELLO, max_tokens=12, temperature=0, stop=[stop])
    assert r.choices[0].message.content == text[:text.find(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_logprobs(client):
    r = client.chat.completions.create(model="m", messages=HELLO, max_tokens=3, temperature=0, logprobs=True,
                                       top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


def test_bad_request_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=HELLO, temperature=5)
    assert e.value.status_code == 400 and e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=HELLO, tools=[{"type": "function", "function": {
            "name": "f", "parameters": {"type": "object", "properties": {}}}}])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "remote" in e.value.message


def test_wrong_key_is_401(server):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="m", messages=HELLO)
    assert e.value.status_code == 401


def test_oversized_body_is_413(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 300_000}])
    assert e.value.status_code == 413


def test_oversized_image_is_400(client):
    big = data_url(png_bytes(32) + b"\0" * 150_000)  # the body fits in 256 KiB, the image not in 64 KiB
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": big}}]}])
    assert "exceeds the limit" in e.value.message and e.value.body["code"] == "invalid_image"


def test_full_queue_is_429(tiny_tokenizer):
    slow = SlowDecoder(make_engine(tiny_tokenizer), delay=0.0)
    slow.gate.clear()
    app = create_app(slow, ServeSettings(moderation="off", max_queue=1))
    with LiveServer(app) as srv:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        results = []

        def call():
            results.append(c.chat.completions.create(model="m", messages=HELLO, max_tokens=2).object)

        threads = [threading.Thread(target=call)]
        threads[0].start()
        assert slow.running.wait(10)
        threads.append(threading.Thread(target=call))
        threads[1].start()
        deadline = time.time() + 10
        while app.state.tg.batcher.queue_depth < 1 and time.time() < deadline:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as e:
            c.chat.completions.create(model="m", messages=HELLO, max_tokens=2)
        assert e.value.response.headers["retry-after"]
        slow.gate.set()
        for t in threads:
            t.join(30)
        assert results == ["chat.completion"] * 2
