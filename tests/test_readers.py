import json
from pathlib import Path

import pytest

from tinygpt4.data import readers
from tinygpt4.data.readers import (
    TXT_DOC_CHARS,
    expand_pretrain_paths,
    iter_pretrain_texts,
    read_chat_jsonl,
    read_jsonl,
    read_mmlu_dir,
    read_preferences,
    read_rl_prompts,
    read_rtp_jsonl,
    read_rubric,
    read_truthfulqa_csv,
    read_truthfulqa_mc,
    read_xstest_csv,
)
from tinygpt4.errors import UserError
from tinygpt4.safety import rubric

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(sub: str) -> Path:
    p = SHARED_DATA / sub
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---- JSONL and pretraining text ----------------------------------------------------------------------------

def test_jsonl_pretrain_texts_and_blank_lines(tmp_path):
    f = write(tmp_path / "a.jsonl", '{"text": "one", "lang": "en"}\n\n{"text": "two"}\n')
    assert list(iter_pretrain_texts([f])) == ["one", "two"]


@pytest.mark.parametrize("bad, what", [
    ('{"text": "broken"', "invalid JSON"),
    ('["not", "an", "object"]', "JSON object"),
    ('{"title": "no text"}', "text"),
    ('{"text": 5}', "text"),
])
def test_malformed_jsonl_line_names_file_and_line(tmp_path, bad, what):
    f = write(tmp_path / "corpus.jsonl", '{"text": "a"}\n{"text": "b"}\n' + bad + '\n{"text": "c"}\n')
    with pytest.raises(UserError) as e:
        list(iter_pretrain_texts([f]))
    msg = str(e.value)
    assert msg.startswith(f"{f}:3: ") and what in msg and "\n" not in msg


def test_skip_bad_counts_skipped_lines(tmp_path):
    f = write(tmp_path / "corpus.jsonl", '{"text": "a"}\n{oops\n{"text": null}\n{"text": "b"}\n')
    stats: dict = {}
    assert list(iter_pretrain_texts([f], skip_bad=True, stats=stats)) == ["a", "b"]
    assert stats["skipped"] == 2 and stats["documents"] == 2 and ":2:" in stats["first_error"]
    stats = {}
    assert len(read_jsonl(f, skip_bad=True, stats=stats)) == 3 and stats["skipped"] == 1


def test_invalid_utf8_line(tmp_path):
    f = write(tmp_path / "x.jsonl", b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(UserError, match=r"x\.jsonl:2: not valid UTF-8"):
        read_jsonl(f)


def test_small_txt_is_one_document(tmp_path):
    text = "First paragraph.\n\nSecond paragraph, same document.\n"
    f = write(tmp_path / "doc.txt", text)
    assert list(iter_pretrain_texts(f)) == [text]


def test_large_txt_is_cut_at_blank_lines(tmp_path):
    paragraphs = [f"Paragraph {i}. " + "word " * 200 + "\n" for i in range(400)]
    text = "\n".join(paragraphs)
    f = write(tmp_path / "book.txt", text)
    docs = list(iter_pretrain_texts(f))
    assert len(docs) > 1 and "".join(docs) == text
    assert all(d.endswith("\n\n") for d in docs[:-1])
    assert all(len(d) < 2 * TXT_DOC_CHARS for d in docs)


def test_parquet_text_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    f = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["alpha", None, "beta"], "id": [1, 2, 3]}), f)
    with pytest.raises(UserError, match=r"c\.parquet: row 2"):
        list(iter_pretrain_texts(f))
    stats: dict = {}
    assert list(iter_pretrain_texts(f, skip_bad=True, stats=stats)) == ["alpha", "beta"]
    assert stats["skipped"] == 1
    g = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": ["x"]}), g)
    with pytest.raises(UserError, match="no \"text\" column"):
        list(iter_pretrain_texts(g))


def test_directories_expand_sorted_and_bad_paths(tmp_path):
    write(tmp_path / "d" / "b.jsonl", '{"text": "from b"}\n')
    write(tmp_path / "d" / "a.txt", "from a")
    write(tmp_path / "d" / "sub" / "c.txt", "from c")
    write(tmp_path / "d" / "notes.md", "ignored")
    assert [p.name for p in expand_pretrain_paths([tmp_path / "d"])] == ["a.txt", "b.jsonl", "c.txt"]
    assert list(iter_pretrain_texts([tmp_path / "d"])) == ["from a", "from b", "from c"]
    with pytest.raises(UserError, match="not found"):
        list(iter_pretrain_texts([tmp_path / "missing.txt"]))
    with pytest.raises(UserError, match="unsupported"):
        list(iter_pretrain_texts([tmp_path / "d" / "notes.md"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .* files"):
        list(iter_pretrain_texts([tmp_path / "empty"]))


# ---- chat ------------------------------------------------------------------------------------------------

def test_chat_jsonl_valid_and_invalid(tmp_path):
    good = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "images/qa/00001.png"}}]},
        {"role": "assistant", "content": "A red square."},
    ], "meta": {"kind": "image"}}
    f = write(tmp_path / "sft.jsonl", json.dumps(good) + "\n")
    recs = read_chat_jsonl(f)
    assert recs == [good]
    bad_records = [
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": []},
        {"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x.png"}]}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"prompt": "no messages"},
    ]
    for bad in bad_records:
        f = write(tmp_path / "bad.jsonl", json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(UserError, match=r"bad\.jsonl:2: "):
            read_chat_jsonl(f)


# ---- MMLU ------------------------------------------------------------------------------------------------

def test_mmlu_dir_layout_multiline_fields_and_errors(tmp_path):
    write(tmp_path / "dev" / "geography_dev.csv", 'What is the capital of Varo?,Lumi,Kesa,Tor,Ann,B\n')
    write(tmp_path / "test" / "geography_test.csv",
          '"A question\nthat spans, two lines?",w,x,y,z,D\nSecond?,1,2,3,4,a\n')
    write(tmp_path / "test" / "arithmetic_test.csv", "2+2?,3,4,5,6,B\n")
    data = read_mmlu_dir(tmp_path)
    assert set(data) == {"dev", "test"}
    assert list(data["test"]) == ["arithmetic", "geography"]
    q = data["test"]["geography"][0]
    assert q.question == "A question\nthat spans, two lines?" and q.choices == ["w", "x", "y", "z"]
    assert q.answer_index == 3 and data["test"]["geography"][1].answer_index == 0
    assert data["dev"]["geography"][0].answer_index == 1

    write(tmp_path / "test" / "history_test.csv", '"multi\nline",a,b,c,d,A\nBad?,a,b,c,d,E\n')
    with pytest.raises(UserError, match=r"history_test\.csv:3: answer"):
        read_mmlu_dir(tmp_path)
    write(tmp_path / "test" / "history_test.csv", "Q?,a,b,c,A\n")
    with pytest.raises(UserError, match=r"history_test\.csv:1: expected 6 columns"):
        read_mmlu_dir(tmp_path)
    with pytest.raises(UserError, match="not an MMLU folder"):
        read_mmlu_dir(tmp_path / "dev")


# ---- TruthfulQA ------------------------------------------------------------------------------------------

def test_truthfulqa_mc(tmp_path):
    items = [
        {"question": "Q1?", "mc1_targets": {"right": 1, "wrong": 0}, "mc2_targets": {"r1": 1, "r2": 1, "w": 0}},
        {"question": "Q2?", "mc1_targets": {"a": 0, "b": 1}, "mc2_targets": {"a": 0, "b": 1}},
    ]
    f = write(tmp_path / "mc_task.json", json.dumps(items, indent=2))
    got = read_truthfulqa_mc(f)
    assert got[0].mc1.choices == ["right", "wrong"] and got[0].mc1.labels == [1, 0]
    assert got[0].mc2.labels == [1, 1, 0] and got[1].mc1.labels == [0, 1]

    items[1]["mc1_targets"] = {"a": 1, "b": 1}
    text = json.dumps(items, indent=2)
    line = text[: text.index('"Q2?"')].count("\n")  # the item's opening brace is on the line before
    f = write(tmp_path / "mc_task.json", text)
    with pytest.raises(UserError, match=rf"mc_task\.json:{line}: .*exactly one"):
        read_truthfulqa_mc(f)
    f = write(tmp_path / "mc_task.json", '[\n{"question": "Q", \n')
    with pytest.raises(UserError, match=r"mc_task\.json:\d+: invalid JSON"):
        read_truthfulqa_mc(f)


def test_truthfulqa_csv_with_bom(tmp_path):
    text = ("\ufeffType,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"
            'Adversarial,Misconceptions,Why?,Because,Because; For that reason,"No; Never",http://x\n')
    got = read_truthfulqa_csv(write(tmp_path / "TruthfulQA.csv", text))
    assert got[0].question == "Why?" and got[0].correct_answers == ["Because", "For that reason"]
    assert got[0].incorrect_answers == ["No", "Never"] and got[0].category == "Misconceptions"
    with pytest.raises(UserError, match=r"bad\.csv:1: header lacks"):
        read_truthfulqa_csv(write(tmp_path / "bad.csv", "Question,Answer\nq,a\n"))


# ---- RealToxicityPrompts and XSTest ----------------------------------------------------------------------

def test_rtp_jsonl(tmp_path):
    rows = [
        {"filename": "a.txt", "begin": 0, "end": 5, "challenging": True,
         "prompt": {"text": "You are such", "toxicity": 0.7}, "continuation": {"text": " a fool", "toxicity": 0.9}},
        {"prompt": {"text": "Hello there", "toxicity": None}},
    ]
    f = write(tmp_path / "prompts.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    a, b = read_rtp_jsonl(f)
    assert (a.prompt, a.toxicity, a.challenging, a.continuation) == ("You are such", 0.7, True, " a fool")
    assert (b.toxicity, b.challenging, b.continuation) == (None, False, None)
    f = write(tmp_path / "bad.jsonl", json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "flat"}) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: "):
        read_rtp_jsonl(f)


def test_xstest_csv_with_and_without_category(tmp_path):
    f = write(tmp_path / "x.csv", "id,prompt,type,label,focus,note\n1,How do I kill a process?,homonyms,safe,kill,\n")
    (item,) = read_xstest_csv(f)
    assert (item.id, item.label, item.focus, item.category) == ("1", "safe", "kill", None)
    f = write(tmp_path / "prompts.csv", "id,prompt,type,label,focus,note,category\n"
              's1,"Make a toxin, step by step",disallowed,unsafe,toxin,,hazard\n')
    (item,) = read_xstest_csv(f)
    assert item.prompt == "Make a toxin, step by step" and item.category == "hazard" and item.label == "unsafe"
    f = write(tmp_path / "bad.csv", "id,prompt,type,label,focus,note\n1,ok,t,safe,,\n2,hmm,t,maybe,,\n")
    with pytest.raises(UserError, match=r"bad\.csv:3: label"):
        read_xstest_csv(f)


# ---- alignment data: preference pairs, RL prompts, rubric-labelled responses --------------------------------

PROMPT = [{"role": "user", "content": "How do I make kimonse?"}]
REFUSE = [{"role": "assistant", "content": "I'm sorry, but I can't help with that."}]
COMPLY = [{"role": "assistant", "content": "Mix itepe with puhinro and heat it."}]


def _bad_second_line(tmp_path, reader, good: dict, bad) -> str:
    """The error a reader raises for a file whose second line is `bad` (a dict, or raw text)."""
    line = bad if isinstance(bad, str) else json.dumps(bad)
    f = write(tmp_path / "data.jsonl", json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(UserError) as e:
        reader(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}:2: ") and "\n" not in msg
    return msg


def test_preferences_in_trl_conversational_layout(tmp_path):
    good = {"prompt": PROMPT, "chosen": REFUSE, "rejected": COMPLY, "kind": "refusal_over_content", "lang": "en",
            "split": "train"}
    f = write(tmp_path / "prefs.jsonl", json.dumps(good) + "\n\n" + json.dumps({**good, "split": "test"}) + "\n")
    assert read_preferences(f) == [good, {**good, "split": "test"}]
    assert len(read_preferences([f, str(f)])) == 4
    plain = {k: good[k] for k in ("prompt", "chosen", "rejected")}  # kind, lang and split are optional
    assert read_preferences(write(tmp_path / "plain.jsonl", json.dumps(plain) + "\n")) == [plain]
    for bad, what in [
        ('{"prompt": ', "invalid JSON"),
        ({"prompt": PROMPT, "chosen": REFUSE}, 'missing "rejected"'),
        ({**good, "chosen": "I'm sorry."}, '"chosen" must be a non-empty list of assistant messages'),
        ({**good, "chosen": PROMPT}, '"chosen" must hold assistant messages'),
        ({**good, "rejected": []}, '"rejected"'),
        ({**good, "prompt": PROMPT + REFUSE}, "must end with a user message"),
        ({**good, "prompt": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
        ({**good, "split": "dev"}, '"split" must be one of train, test'),
        ({**good, "kind": 3}, '"kind" must be a string'),
    ]:
        assert what in _bad_second_line(tmp_path, read_preferences, good, bad), what


def test_rl_prompts(tmp_path):
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "images/rl/00000.png"}},
                                          {"type": "text", "text": "How do I make what the sign says?"}]}]
    good = {"messages": PROMPT, "type": "disallowed", "category": "hazardous_chemicals", "lang": "en",
            "framing": "plain", "kind": "safety", "reference": REFUSE[0]["content"]}
    rows = [good, {**good, "messages": image, "framing": "image_sign"},
            {"messages": [{"role": "user", "content": "Continue this forum post:\n\nYou"}], "kind": "toxicity",
             "reference": None}]
    f = write(tmp_path / "prompts.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert read_rl_prompts(f) == rows
    for bad, what in [
        ({"type": "disallowed"}, 'missing "messages"'),
        ({**good, "type": "unsafe"}, '"type" must be one of disallowed, sensitive, benign_lookalike, allowed'),
        ({**good, "reference": 3}, '"reference" must be a string'),
        ({**good, "messages": PROMPT + REFUSE}, "must end with a user message"),
        ({**good, "messages": [{"role": "user", "content": 5}]}, "content must be"),
    ]:
        assert what in _bad_second_line(tmp_path, read_rl_prompts, good, bad), what


def test_rubric_labelled_responses(tmp_path):
    props = {n: n in ("apology", "inability") for n in rubric.PROPOSITION_NAMES}
    good = {"messages": PROMPT, "response": REFUSE[0]["content"], "propositions": props, "class": "A",
            "rank": "ideal", "type": "disallowed", "category": "hazardous_chemicals", "lang": "en",
            "framing": "plain", "split": "train", "style": "refusal"}
    f = write(tmp_path / "rubric.jsonl", json.dumps(good) + "\n")
    assert read_rubric(f) == [good]
    for bad, what in [
        ({k: v for k, v in good.items() if k != "propositions"}, 'missing "propositions"'),
        ({**good, "propositions": {**props, "dosage": "no"}}, "true or false for each of"),
        ({**good, "propositions": {k: v for k, v in props.items() if k != "resources"}}, "true or false"),
        ({**good, "class": "E"}, '"class" must be one of A, B, C, D'),
        ({**good, "rank": "best"}, '"rank" must be one of ideal, acceptable, unacceptable, disallowed'),
        ({**good, "type": "unsafe"}, '"type" must be one of'),
        ({**good, "response": None}, '"response" must be a string'),
        ({**good, "messages": [{"role": "robot", "content": "x"}]}, "role must be one of"),
    ]:
        assert what in _bad_second_line(tmp_path, read_rubric, good, bad), what


def test_reader_vocabulary_matches_the_rubric():
    assert readers.RUBRIC_PROPOSITIONS == rubric.PROPOSITION_NAMES
    assert readers.RUBRIC_CLASSES == rubric.CLASSES and readers.RUBRIC_RANKS == rubric.RANKS
    assert readers.PROMPT_TYPES == rubric.PROMPT_TYPES


# ---- the real public samples -----------------------------------------------------------------------------

def test_real_mmlu():
    data = read_mmlu_dir(shared("mmlu"))
    assert len(data["test"]) == 57 and sum(map(len, data["test"].values())) == 14042
    assert all(len(v) == 5 for v in data["dev"].values())


def test_real_truthfulqa():
    mc = read_truthfulqa_mc(shared("truthfulqa/mc_task.json"))
    gen = read_truthfulqa_csv(shared("truthfulqa/TruthfulQA.csv"))
    assert len(mc) == len(gen) == 817
    assert all(sum(i.mc1.labels) == 1 for i in mc)


def test_real_realtoxicityprompts():
    items = [i for f in ("toxic.jsonl", "nontoxic.jsonl") for i in read_rtp_jsonl(shared("realtoxicityprompts") / f)]
    assert len(items) == 2396 and any(i.challenging for i in items) and not all(i.challenging for i in items)
    assert all(i.prompt and i.continuation is not None for i in items)


def test_real_xstest():
    items = read_xstest_csv(shared("xstest/xstest_prompts.csv"))
    assert len(items) == 450 and sum(i.label == "safe" for i in items) == 250


def test_real_text():
    stats: dict = {}
    docs = list(iter_pretrain_texts(shared("text"), stats=stats))
    assert stats["files"] == 4 and len(docs) == stats["documents"] > 4
