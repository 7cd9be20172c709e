import json

import pytest

from tinygpt4.tokenizer import SPECIALS, Tokenizer, bytes_per_token, train_tokenizer_from_iterator

SAMPLES = [
    "Hello, world! The quick brown fox.",
    "서울은 한국의 수도입니다. 안녕하세요",
    "東京は日本の首都です。カタカナ",
    "emoji 😀🎉 and ümlauts",
    "tabs\tand\nnewlines\r\n  spaces",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_invalid_utf8_bytes_round_trip_as_replacement(tiny_tokenizer):
    text = b"ok \xff\xfe bad \xc3".decode("utf-8", errors="replace")
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_plain_text_never_produces_special_tokens(tiny_tokenizer):
    text = "".join(SPECIALS) + " <|eot|> <|image|><|assistant|>"
    ids = tiny_tokenizer.encode(text)
    assert all(i >= len(SPECIALS) for i in ids)
    assert tiny_tokenizer.decode(ids) == text


def test_special_ids_fixed(tiny_tokenizer):
    t = tiny_tokenizer
    assert [t.pad_id, t.bos_id, t.eot_id, t.system_id, t.user_id, t.assistant_id, t.image_id] == list(range(7))


def test_token_bytes_concatenate_to_utf8(tiny_tokenizer):
    text = "안녕 😀 hello"
    ids = tiny_tokenizer.encode(text)
    assert b"".join(tiny_tokenizer.token_bytes(i) for i in ids) == text.encode()


def test_korean_gets_merged_tokens():
    corpus = ["서울은 한국의 수도입니다. 부산은 큰 도시입니다. 한국어 문장을 많이 씁니다."] * 50 + ["English text here."] * 50
    tok = train_tokenizer_from_iterator(corpus, 600)
    assert bytes_per_token(tok, ["서울은 한국의 수도입니다."]) >= 2.0


def test_save_load_and_transformers_compat(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    again = Tokenizer.load(tmp_path)
    assert again.encode("Hello world") == tiny_tokenizer.encode("Hello world")
    json.loads((tmp_path / "tokenizer.json").read_text())
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert hf.encode("Hello world 서울") == tiny_tokenizer.encode("Hello world 서울")


def test_cli_trains_and_reports(tmp_path, capsys):
    from tinygpt4.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text": s, "lang": lang}) for s, lang in
                              [("Hello world again and again", "en"), ("서울은 한국의 수도입니다", "ko")] * 30))
    assert main(["tokenizer", "--input", str(data), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vocab_size"] == 300 and "bytes_per_token_ko" in out
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


def test_every_digit_is_its_own_token():
    """Numbers are split into digits (as in PaLM and LLaMA) however often a longer number occurs."""
    tok = train_tokenizer_from_iterator(["In 2026 we counted 2026 birds and 123 cats."] * 200, 400)
    ids = tok.encode("2026 and 123")
    pieces = [tok.decode([i]) for i in ids]
    assert pieces[:4] == ["2", "0", "2", "6"] and pieces[-3:] == ["1", "2", "3"]
