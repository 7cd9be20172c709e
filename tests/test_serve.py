"""The OpenAI-compatible server: response shapes, batching, limits and hostile input, disconnects, draining."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_helpers import (
    LiveServer,
    ScriptedDecoder,
    SlowDecoder,
    bomb_png,
    data_url,
    make_engine,
    png_bytes,
)

from tinygpt4.chat import render_chat
from tinygpt4.serve.api import ServeSettings, create_app
from tinygpt4.serve.decoder import Decoder

USER = [{"role": "user", "content": "Hello world"}]


@pytest.fixture(scope="module")
def vlm_engine(tiny_tokenizer):
    return make_engine(tiny_tokenizer, vision=True)


@pytest.fixture(scope="module")
def text_engine(tiny_tokenizer):
    return make_engine(tiny_tokenizer, vision=False)


@pytest.fixture(scope="module")
def client(vlm_engine):
    settings = ServeSettings(max_image_bytes=64 * 1024, max_images=3, max_body_bytes=1024 * 1024,
                             max_messages=16, max_n=4, moderation="off")
    with TestClient(create_app(vlm_engine, settings)) as c:
        yield c


def chat(client, **kw):
    body = {"messages": USER, "max_tokens": 8, "temperature": 0, **kw}
    return client.post("/v1/chat/completions", json=body)


def sse_events(text: str) -> list:
    lines = [ln[len("data: "):] for ln in text.split("\n\n") if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def assert_openai_error(r, status: int):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in err["message"]


# ---- shapes ---------------------------------------------------------------------------------------------

def test_completion_matches_engine_and_counts_usage(client, vlm_engine, tiny_tokenizer):
    r = chat(client, max_tokens=12)
    assert r.status_code == 200
    out = r.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    (choice,) = out["choices"]
    assert choice["message"]["role"] == "assistant" and choice["index"] == 0
    ids = render_chat(USER, tiny_tokenizer, image_tokens=4, add_generation_prompt=True).ids
    ref = vlm_engine.generate([ids], max_new_tokens=12)[0]
    assert choice["message"]["content"] == ref.text
    assert choice["finish_reason"] == ref.finish_reason
    assert out["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(ref.token_ids),
                            "total_tokens": len(ids) + len(ref.token_ids)}


def test_stream_chunks_usage_and_done(client):
    plain = chat(client, max_tokens=10).json()
    r = chat(client, max_tokens=10, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"] for e in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert events[-1]["choices"] == [] and events[-1]["usage"] == plain["usage"]
    assert all(e["usage"] is None for e in events[:-1])


def test_n_choices_logprobs_and_max_tokens(client):
    out = chat(client, n=2, max_tokens=5, temperature=0.8, logprobs=True, top_logprobs=3).json()
    assert [c["index"] for c in out["choices"]] == [0, 1]
    for c in out["choices"]:
        lp = c["logprobs"]["content"]
        if c["finish_reason"] == "length":
            assert len(lp) == 5
        for e in lp:
            assert e["logprob"] <= 0 and isinstance(e["bytes"], list) and len(e["top_logprobs"]) == 3
    assert out["usage"]["completion_tokens"] == sum(len(c["logprobs"]["content"]) for c in out["choices"])


def test_stop_string_cuts_output(client):
    full = chat(client, max_tokens=16).json()["choices"][0]["message"]["content"]
    visible = [i for i, ch in enumerate(full) if ch.isprintable() and ch != "\ufffd"]
    if len(visible) < 4:
        pytest.skip("the random model's text has too few printable characters to pick a stop string")
    i = visible[len(visible) // 2]
    stop = full[i:i + 2]
    want = full[:full.find(stop)]
    out = chat(client, max_tokens=16, stop=[stop, "never-there"]).json()["choices"][0]
    assert out["message"]["content"] == want and out["finish_reason"] == "stop"
    events = sse_events(chat(client, max_tokens=16, stop=stop, stream=True).text)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == want


def test_image_parts_count_placeholder_tokens(client):
    url = data_url(png_bytes(32))
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": "what colour?"},
                                         {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]
    r = chat(client, messages=msgs)
    assert r.status_code == 200, r.text
    text_only = chat(client, messages=[{"role": "user", "content": "what colour?"}]).json()
    assert r.json()["usage"]["prompt_tokens"] == text_only["usage"]["prompt_tokens"] + 2 * 4


def test_models_health_metrics(client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"
    assert client.get(f"/v1/models/{models['data'][0]['id']}").status_code == 200
    assert client.get("/health").json()["status"] == "ok"
    chat(client)
    text = client.get("/metrics").text
    for name in ("tinygpt4_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}",
                 "tinygpt4_prompt_tokens_total", "tinygpt4_completion_tokens_total",
                 "tinygpt4_time_to_first_token_seconds_bucket", "tinygpt4_request_latency_seconds_count",
                 "tinygpt4_queue_depth"):
        assert name in text


def test_page_is_served_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "script-src 'self'" in r.headers["content-security-policy"]


# ---- hostile input ----------------------------------------------------------------------------------------

OK_MSG = [{"role": "user", "content": "hi"}]


def _img(url):
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                      {"type": "image_url", "image_url": {"url": url}}]}]}


HOSTILE = [
    ("malformed JSON", b'{"messages": [', 400),
    ("JSON that is not an object", b"[1, 2, 3]", 400),
    ("invalid UTF-8", b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),
    ("NaN temperature", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400),
    ("nested 100k deep", b"[" * 100_000 + b"]" * 100_000, 400),
    ("messages is a string", {"messages": "hi"}, 400),
    ("content is a number", {"messages": [{"role": "user", "content": 5}]}, 400),
    ("max_tokens is a string", {"messages": OK_MSG, "max_tokens": "5"}, 400),
    ("stream is a string", {"messages": OK_MSG, "stream": "yes"}, 400),
    ("empty messages", {"messages": []}, 400),
    ("unknown role", {"messages": [{"role": "tool", "content": "x"}]}, 400),
    ("unknown part type", {"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400),
    ("tools requested", {"messages": OK_MSG, "tools": [{"type": "function"}]}, 400),
    ("response_format json", {"messages": OK_MSG, "response_format": {"type": "json_object"}}, 400),
    ("max_tokens 10^12", {"messages": OK_MSG, "max_tokens": 10**12}, 400),
    ("max_tokens 0", {"messages": OK_MSG, "max_tokens": 0}, 400),
    ("max_tokens -1", {"messages": OK_MSG, "max_completion_tokens": -1}, 400),
    ("n 1000", {"messages": OK_MSG, "n": 1000}, 400),
    ("n 0", {"messages": OK_MSG, "n": 0}, 400),
    ("temperature 1e9", {"messages": OK_MSG, "temperature": 1e9}, 400),
    ("temperature -1", {"messages": OK_MSG, "temperature": -1}, 400),
    ("top_p 0", {"messages": OK_MSG, "top_p": 0}, 400),
    ("top_logprobs 100", {"messages": OK_MSG, "logprobs": True, "top_logprobs": 100}, 400),
    ("seed 2^70", {"messages": OK_MSG, "seed": 2**70}, 400),
    ("5 stop strings", {"messages": OK_MSG, "stop": ["a", "b", "c", "d", "e"]}, 400),
    ("17 messages", {"messages": OK_MSG * 17}, 400),
    ("huge image (200 KB)", _img(data_url(os.urandom(200 * 1024))), 400),
    ("truncated PNG", _img(data_url(png_bytes(32)[:60])), 400),
    ("decompression bomb 30000x30000", _img(data_url(bomb_png())), 400),
    ("5000x5000 PNG header (25 Mpx)", _img(data_url(bomb_png(5000))), 400),
    ("not an image (text/plain)", _img("data:text/plain;base64,aGVsbG8="), 400),
    ("random bytes as PNG", _img(data_url(os.urandom(1000))), 400),
    ("invalid base64", _img("data:image/png;base64,@@@@"), 400),
    ("remote http URL", _img("http://127.0.0.1:9/a.png"), 400),
    ("remote https URL", _img("https://example.com/a.png"), 400),
    ("file: URL", _img("file:///etc/passwd"), 400),
    ("relative path", _img("../../../etc/passwd"), 400),
    ("too many images (4)", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(png_bytes(8))}}] * 4}]}, 400),
    ("image in assistant turn", {"messages": [{"role": "assistant", "content": [
        {"type": "image_url", "image_url": {"url": data_url(png_bytes(8))}}]}, *OK_MSG]}, 400),
    ("body over 1 MiB", {"messages": [{"role": "user", "content": "x" * (1024 * 1024 + 10)}]}, 413),
]


@pytest.mark.parametrize("name,body,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_gets_a_clean_4xx(client, name, body, status):
    if isinstance(body, bytes):
        r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/v1/chat/completions", json=body)
    assert_openai_error(r, status)


def test_server_still_answers_after_hostile_input(client):
    for _, body, _ in HOSTILE[:6]:
        client.post("/v1/chat/completions", content=body if isinstance(body, bytes) else json.dumps(body))
    assert client.get("/health").status_code == 200
    assert chat(client).status_code == 200


def test_unknown_routes_and_methods_use_openai_errors(client):
    assert_openai_error(client.get("/v1/nothing"), 404)
    assert_openai_error(client.put("/v1/chat/completions"), 405)
    assert_openai_error(client.get("/v1/models/not-this-one"), 404)


def test_oversized_body_by_content_length(client):
    r = client.post("/v1/chat/completions", content=b"{}", headers={"content-length": str(10**9)})
    assert_openai_error(r, 413)


def test_text_model_refuses_images(text_engine):
    with TestClient(create_app(text_engine, ServeSettings(moderation="off"))) as c:
        assert_openai_error(c.post("/v1/chat/completions", json=_img(data_url(png_bytes(8)))), 400)


def test_internal_errors_are_generic(text_engine, tiny_tokenizer):
    class Broken(Decoder):
        fail_in = "add"

        def add(self, specs):
            if self.fail_in == "add":
                raise RuntimeError("secret internal detail /home/x")
            return super().add(specs)

        def step(self):
            raise RuntimeError("secret internal detail /home/y")

        def remove(self, rows):
            time.sleep(0.3)  # a slow reset: the client must not hear of the failure before it is done
            return super().remove(rows)

    broken = Broken(text_engine)
    with TestClient(create_app(broken, ServeSettings(moderation="off"))) as c:
        r = chat(c)
        assert_openai_error(r, 500)
        assert "secret" not in r.text
        broken.fail_in = "step"
        r = chat(c, stream=True)
        assert "secret" not in r.text and sse_events(r.text)[-1]["error"]["type"] == "server_error"
        assert c.get("/health").status_code == 200
        assert broken.rows == 0  # the failed rows were cleared; the worker is still serving


# ---- API key ----------------------------------------------------------------------------------------------

def test_api_key_required_except_health(text_engine):
    with TestClient(create_app(text_engine, ServeSettings(api_key="sk-test-123", moderation="off"))) as c:
        assert c.get("/health").status_code == 200
        assert_openai_error(c.get("/v1/models"), 401)
        assert_openai_error(chat(c), 401)
        assert_openai_error(c.post("/v1/chat/completions", json={"messages": OK_MSG},
                                   headers={"authorization": "Bearer sk-test-124"}), 401)
        assert_openai_error(c.get("/metrics"), 401)
        ok = {"authorization": "Bearer sk-test-123"}
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert c.post("/v1/chat/completions", json={"messages": OK_MSG, "max_tokens": 2}, headers=ok).status_code == 200


def test_cors_is_off_unless_configured(text_engine):
    pre = {"origin": "https://elsewhere.example", "access-control-request-method": "POST"}
    with TestClient(create_app(text_engine, ServeSettings(moderation="off"))) as c:
        assert "access-control-allow-origin" not in c.options("/v1/chat/completions", headers=pre).headers
        assert "access-control-allow-origin" not in c.get("/v1/models", headers={"origin": pre["origin"]}).headers
    settings = ServeSettings(moderation="off", cors_origins=["https://elsewhere.example"])
    with TestClient(create_app(text_engine, settings)) as c:
        r = c.options("/v1/chat/completions", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"
        r = c.options("/v1/chat/completions", headers={**pre, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_health_is_503_while_loading(monkeypatch, tmp_path, text_engine):
    import tinygpt4.serve.api as api

    gate = threading.Event()

    def slow_load(model_dir, device):
        gate.wait(10)
        return text_engine, "fp_test"

    monkeypatch.setattr(api, "_load_engine", slow_load)
    with TestClient(create_app(tmp_path, ServeSettings(moderation="off"))) as c:
        assert c.get("/health").status_code == 503
        assert_openai_error(chat(c), 503)
        gate.set()
        deadline = time.time() + 10
        while c.get("/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.02)
        assert c.get("/health").status_code == 200 and chat(c).status_code == 200


# ---- continuous batching: rows joining and leaving decode exactly as alone -------------------------------

def test_decoder_rows_joining_and_leaving_match_solo_greedy(vlm_engine, tiny_tokenizer):
    from PIL import Image

    from tinygpt4.serve.decoder import RowSpec

    tok = tiny_tokenizer
    red, blue = Image.new("RGB", (32, 32), (220, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 220))

    def prompt(text, images=0):
        content = [{"type": "image_url", "image_url": {"url": f"img{i}"}} for i in range(images)]
        msgs = [{"role": "user", "content": content + [{"type": "text", "text": text}]}]
        return render_chat(msgs, tok, image_tokens=4, add_generation_prompt=True, load_images=False).ids

    rows = {  # key: (prompt, images, tokens to generate, step at which it joins)
        0: (prompt("Hello"), [], 12, 0),
        1: (prompt("The capital of Veloria is Tamsk. Veloria uses the dorin as its currency. " * 2), [], 9, 3),
        2: (prompt("hi", 1), [red], 10, 3),
        3: (prompt("2 + 3 =", 2), [blue, red], 8, 7),
    }
    solo = {k: vlm_engine.generate([p], max_new_tokens=n, images=[imgs] if imgs else None)[0].token_ids
            for k, (p, imgs, n, _) in rows.items()}
    dec = Decoder(vlm_engine)
    got: dict[int, list[int]] = {k: [] for k in rows}

    def take(tokens):  # record, then drop rows that are done (as the batcher does)
        for t in tokens:
            got[t.key].append(t.token_id)
        dec.remove({k for k in got if k in {s.key for s in dec.specs} and
                    (len(got[k]) >= rows[k][2] or got[k][-1] == tok.eot_id)})

    for step in range(40):
        take(dec.add([RowSpec(k, p, n, imgs) for k, (p, imgs, n, at) in rows.items() if at == step]))
        if dec.rows:
            take(dec.step())
        elif step > max(at for *_, at in rows.values()):
            break
    for k in rows:
        ids = [t for t in got[k] if t != tok.eot_id]
        assert ids == solo[k], k
    assert dec.rows == 0 and dec.cache is None


# ---- per-row text pipeline (scripted tokens) -------------------------------------------------------------

def test_stop_string_split_across_tokens_never_leaks(tiny_tokenizer):
    eng = ScriptedDecoder(tiny_tokenizer, "The capital of Veloria is Tamsk. Hello world")
    with TestClient(create_app(eng, ServeSettings(moderation="off"))) as c:
        events = sse_events(chat(c, stop="Veloria is", stream=True, max_tokens=40).text)
        pieces = [e["choices"][0]["delta"].get("content", "") for e in events]
        assert "".join(pieces) == "The capital of "
        assert events[-1]["choices"][0]["finish_reason"] == "stop"
        out = chat(c, stop=["zzz", "Tamsk"], max_tokens=40).json()["choices"][0]
        assert out["message"]["content"] == "The capital of Veloria is " and out["finish_reason"] == "stop"
        n = len(tiny_tokenizer.encode("The capital of Veloria is Tamsk. Hello world"))
        out = chat(c, max_tokens=3).json()
        assert out["choices"][0]["finish_reason"] == "length" and out["usage"]["completion_tokens"] == 3
        out = chat(c, max_tokens=n + 5).json()
        assert out["choices"][0]["finish_reason"] == "stop" and out["usage"]["completion_tokens"] == n


def test_stream_lines_survive_unicode_line_separators(tiny_tokenizer):
    eng = ScriptedDecoder(tiny_tokenizer, "a\u2028b\x85c\u2029d\ne")
    with TestClient(create_app(eng, ServeSettings(moderation="off"))) as c:
        r = chat(c, stream=True, max_tokens=40)
    lines = [ln for ln in r.text.splitlines() if ln]  # what a splitlines-based client sees
    events = [json.loads(ln[6:]) for ln in lines if ln != "data: [DONE]"]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "a\u2028b\x85c\u2029d\ne"


# ---- moderation in the server ----------------------------------------------------------------------------

def test_block_mode_filters_input_and_output_and_audits(tmp_path, tiny_tokenizer):
    audit = tmp_path / "audit.jsonl"
    eng = ScriptedDecoder(tiny_tokenizer, "Sure. To synthesize sarin you first need the precursor")
    settings = ServeSettings(moderation="block", audit_log=str(audit), api_key="sk-very-secret")
    hdr = {"authorization": "Bearer sk-very-secret"}
    with TestClient(create_app(eng, settings)) as c:
        bad = [{"role": "user", "content": "How do I kill my neighbour?"}]
        out = c.post("/v1/chat/completions", json={"messages": bad}, headers=hdr).json()
        assert out["choices"][0]["finish_reason"] == "content_filter"
        assert out["choices"][0]["message"]["content"] == ""
        events = sse_events(c.post("/v1/chat/completions", json={"messages": bad, "stream": True},
                                   headers=hdr).text)
        assert events[-1]["choices"][0]["finish_reason"] == "content_filter"
        # A harmless question whose (scripted) answer turns disallowed: cut before the disallowed phrase.
        ok = [{"role": "user", "content": "Tell me about chemistry"}]
        events = sse_events(c.post("/v1/chat/completions", json={"messages": ok, "stream": True, "max_tokens": 60},
                                   headers=hdr).text)
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        assert events[-1]["choices"][0]["finish_reason"] == "content_filter"
        assert "sarin" not in text and text.startswith("Sure.")
        assert c.get("/metrics", headers=hdr).text.count('tinygpt4_moderation_decisions_total{stage="input"') == 1
    raw = audit.read_text()
    assert "sk-very-secret" not in raw and "neighbour" not in raw
    records = [json.loads(x) for x in raw.splitlines()]
    assert {(r["stage"], r["action"]) for r in records} >= {("input", "block"), ("output", "block")}
    assert all(r["ts"].endswith("Z") and r["categories"] for r in records)


def test_flag_mode_answers_but_records(tmp_path, text_engine):
    audit = tmp_path / "audit.jsonl"
    with TestClient(create_app(text_engine, ServeSettings(moderation="flag", audit_log=str(audit)))) as c:
        out = chat(c, messages=[{"role": "user", "content": "How do I kill my neighbour?"}]).json()
        assert out["choices"][0]["finish_reason"] in ("stop", "length")
    (rec,) = [json.loads(x) for x in audit.read_text().splitlines() if '"input"' in x]
    assert rec["action"] == "flag" and rec["flagged"] and rec["categories"] == ["violence"]


# ---- live server: batching, queue limit, disconnects --------------------------------------------------------

def test_concurrent_requests_are_batched_and_match_solo_decoding(vlm_engine, tiny_tokenizer):
    prompts = ["Hello world", "The capital of Veloria", "2 + 3 =", "Hola mundo", "How do I", "서울은"]
    solo = []
    for p in prompts:
        ids = render_chat([{"role": "user", "content": p}], tiny_tokenizer, image_tokens=4,
                          add_generation_prompt=True).ids
        solo.append(vlm_engine.generate([ids], max_new_tokens=10)[0].text)
    app = create_app(vlm_engine, ServeSettings(moderation="off", batch_wait_ms=50))
    results = [None] * len(prompts)

    def one(i):
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={
            "messages": [{"role": "user", "content": prompts[i]}], "max_tokens": 10, "temperature": 0})
        results[i] = r.json()["choices"][0]["message"]["content"]

    with LiveServer(app) as srv:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 'tinygpt4_batch_rows_count' in httpx.get(srv.url + "/metrics").text
    assert results == solo
    batches = app.state.tg.metrics.batch_rows
    assert batches.count < len(prompts)  # some requests shared a batch


def test_full_queue_answers_429_with_retry_after(text_engine):
    slow = SlowDecoder(text_engine, delay=0.0)
    slow.gate.clear()
    app = create_app(slow, ServeSettings(moderation="off", max_queue=1, retry_after_s=3))
    statuses = []

    def one():
        r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                       json={"messages": OK_MSG, "max_tokens": 2, "temperature": 0})
        statuses.append(r.status_code)

    with LiveServer(app) as srv:
        first = threading.Thread(target=one)
        first.start()
        assert slow.running.wait(10)  # the worker holds request 1
        second = threading.Thread(target=one)
        second.start()
        deadline = time.time() + 10
        while app.state.tg.batcher.queue_depth < 1 and time.time() < deadline:
            time.sleep(0.01)
        r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": OK_MSG}, timeout=30)
        assert_openai_error(r, 429)
        assert r.headers["retry-after"] == "3"
        slow.gate.set()
        first.join()
        second.join()
    assert statuses == [200, 200]


def test_client_disconnect_mid_stream_frees_its_slot(text_engine):
    slow = SlowDecoder(text_engine, delay=0.02)
    app = create_app(slow, ServeSettings(moderation="off"))
    with LiveServer(app) as srv:
        body = {"messages": OK_MSG, "max_tokens": 200, "temperature": 0.9, "stream": True}
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            got = 0
            for line in lines:
                if line.startswith("data: {") and '"content": ""' not in line:
                    got += 1
                    if got == 3:
                        break
        batcher = app.state.tg.batcher
        deadline = time.time() + 10
        while batcher.active_rows and time.time() < deadline:
            time.sleep(0.01)
        assert batcher.active_rows == 0
        (made,) = slow.tokens_at_exit.values()
        assert made < 100  # stopped long before its 200 tokens
        r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": OK_MSG, "max_tokens": 3}, timeout=30)
        assert r.status_code == 200


# ---- the CLI: SIGTERM drains running requests ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, text_engine):
    from tinygpt4.checkpoint import save_model

    d = tmp_path_factory.mktemp("ckpt")
    save_model(d, text_engine.model, text_engine.tok)
    return d


def test_cli_sigterm_drains_then_exits(model_dir, tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinygpt4.cli", "serve", str(model_dir), "--port", str(port), "--max-batch", "1",
         "--drain-seconds", "120", "--moderation", "off", "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        done = []
        accepted = [threading.Event() for _ in range(3)]

        def stream_one(i):
            body = {"messages": OK_MSG, "max_tokens": 40, "temperature": 0.9, "stream": True}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
                accepted[i].set()  # headers arrive once the request is queued: it is in before SIGTERM
                last = None
                for line in r.iter_lines():
                    if line:
                        last = line
                done.append(last)

        threads = [threading.Thread(target=stream_one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        assert all(ev.wait(30) for ev in accepted)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.HTTPError):  # no new connections while draining
            httpx.get(url + "/health", timeout=2)
        for t in threads:
            t.join(120)
        assert done == ["data: [DONE]"] * 3  # the running request and the two queued behind it finished
        assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_folder_without_checkpoint(tmp_path):
    from tinygpt4.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    assert Path(tmp_path).exists()
