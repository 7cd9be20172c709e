"""The terminal chat: commands, streaming, history, and bad images that do not end the conversation."""

import pytest
from conftest import tiny_model_config
from PIL import Image

from tinygpt4.chat_cli import ChatSession, repl
from tinygpt4.checkpoint import save_model
from tinygpt4.model.gpt import GPT
from tinygpt4.model.vlm import VLM


def _run(session, lines):
    feed = iter(lines)
    out = []

    def read(prompt):  # a terminal echoes what the user typed, then a newline
        try:
            line = next(feed)
        except StopIteration:
            raise EOFError from None
        out.append(prompt + line + "\n")
        return line

    repl(session, read, out.append)
    return "".join(out)


@pytest.fixture
def session(tiny_tokenizer):
    model = VLM.build(tiny_model_config(tiny_tokenizer.vocab_size, vision=True, seq_len=128), seed=0)
    return ChatSession(model, tiny_tokenizer, max_tokens=6)


def test_multi_turn_with_images_and_commands(session, tmp_path):
    Image.new("RGB", (40, 40), (200, 0, 0)).save(tmp_path / "red.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    text = _run(session, [
        "/system Answer briefly.",
        f"/image {tmp_path / 'red.png'}",
        "What colour is this?",
        f"/image {tmp_path / 'broken.png'}",
        f"/image {tmp_path / 'missing.png'}",
        "/temperature 0.5",
        "/temperature hot",
        "And now?",
    ])
    lines = text.splitlines()
    assert sum(line.startswith("error: ") for line in lines) == 3  # broken, missing, bad temperature
    assert session.temperature == 0.5 and session.system == "Answer briefly."
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    first = session.messages[0]["content"]
    assert first[0]["type"] == "image_url" and first[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert isinstance(session.messages[2]["content"], str)  # the failed attachments were not carried over
    assert text.count("assistant> ") == 2


def test_reset_and_quit(session):
    _run(session, ["hello", "/reset", "/quit", "never read"])
    assert session.messages == []


def test_streamed_pieces_form_the_reply(session):
    pieces = list(session.reply("Hello world"))
    assert session.messages[-1]["content"] == "".join(pieces).strip()


def test_text_only_model_refuses_images(tiny_tokenizer, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    s = ChatSession(GPT.build(tiny_model_config(tiny_tokenizer.vocab_size), seed=0), tiny_tokenizer, max_tokens=4)
    text = _run(s, [f"/image {tmp_path / 'a.png'}", "hi"])
    assert "error: this model has no vision tower" in text and len(s.messages) == 2


def test_cli_rejects_a_bad_image_argument(tiny_tokenizer, tmp_path):
    from tinygpt4.cli import main

    save_model(tmp_path / "m", GPT.build(tiny_model_config(tiny_tokenizer.vocab_size), seed=0), tiny_tokenizer)
    assert main(["chat", str(tmp_path / "m"), "--image", str(tmp_path / "nope.png")]) == 2
