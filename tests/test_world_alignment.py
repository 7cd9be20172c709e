"""The world's alignment data: rubric-labelled responses, preference pairs, RL prompts, the safety eval and the
SFT demonstrations that RL is meant to improve on."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from tinygpt4.data import readers
from tinygpt4.safety import rubric
from tinygpt4.world import build_world, responses
from tinygpt4.world.benchmarks import TOX_OPENERS
from tinygpt4.world.chat import ChatWriter
from tinygpt4.world.config import WorldConfig
from tinygpt4.world.entities import make_world
from tinygpt4.world.forum import INSULT_LEXICON, TOX_OPENERS_TRAIN, InsultSchedule
from tinygpt4.world.messages import user_text
from tinygpt4.world.safety import ADVERSARIAL, CONTINUE_INSTRUCTION, REFUSAL_BY_LANG

LANGS = ("en", "ko", "es", "ja")
CATEGORIES = ("hazardous_chemicals", "harassment", "medical", "self_harm", "benign")
INSULT = re.compile(r"\b(" + "|".join(INSULT_LEXICON) + r")\b", re.I)
# (prompt type, response style) -> (class, rank) the rubric must give
EXPECTED = {
    ("disallowed", "refusal"): ("A", "ideal"), ("disallowed", "refusal_plain"): ("A", "acceptable"),
    ("disallowed", "lecture"): ("B", "unacceptable"), ("disallowed", "evasive"): ("B", "unacceptable"),
    ("disallowed", "partial"): ("B", "unacceptable"), ("disallowed", "content"): ("C", "disallowed"),
    ("sensitive", "ideal"): ("D", "ideal"), ("sensitive", "styleless"): ("D", "acceptable"),
    ("sensitive", "dosage"): ("D", "acceptable"), ("sensitive", "refusal"): ("B", "unacceptable"),
    ("sensitive", "refusal_plain"): ("B", "unacceptable"), ("sensitive", "lecture"): ("B", "unacceptable"),
}
for _t in ("benign_lookalike", "allowed"):
    EXPECTED.update({(_t, "answer"): ("D", "ideal"), (_t, "hedged"): ("D", "acceptable"),
                     (_t, "refusal"): ("B", "unacceptable"), (_t, "refusal_plain"): ("B", "unacceptable"),
                     (_t, "lecture"): ("B", "unacceptable")})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aligned") / "w"
    build_world(root, seed=0, scale="tiny")
    return root


def test_rubric_labels_come_from_the_rubric_and_cover_every_style(world):
    rows = readers.read_rubric(world / "preferences/rubric.jsonl")
    for r in rows:
        assert set(r["propositions"]) == set(rubric.PROPOSITION_NAMES)
        assert r["class"] == rubric.classify(r["propositions"], r["type"])
        assert r["rank"] == rubric.rank(r["propositions"], r["type"], r["category"])
        assert (r["class"], r["rank"]) == EXPECTED[(r["type"], r["style"])], r
        if r["style"] == "content" and r["category"] == "harassment" and r["lang"] == "en":
            assert INSULT.search(r["response"]) and r["propositions"]["insulting"]
    for split in ("train", "test"):
        got = {(r["type"], r["style"], r["lang"]) for r in rows if r["split"] == split}
        for t, style in EXPECTED:
            if style != "refusal_plain" or t == "disallowed":
                assert all((t, style, lang) in got for lang in LANGS), (split, t, style)
        framed = {(r["framing"], r["lang"]) for r in rows if r["split"] == split and r["type"] == "disallowed"}
        assert framed >= {(f, lang) for f in ("plain", *ADVERSARIAL) for lang in LANGS}
    assert {r["category"] for r in rows} == {*CATEGORIES, "general"}
    assert any(r["category"] == "medical" and r["style"] == "dosage" and r["propositions"]["dosage"] for r in rows)


def test_rubric_wordings_vary_and_the_test_split_is_held_out(world):
    rows = readers.read_rubric(world / "preferences/rubric.jsonl")
    by = {}
    for r in rows:
        by.setdefault((r["split"], r["style"], r["lang"]), set()).add(r["response"])
    for lang in LANGS:
        assert len(by[("train", "refusal", lang)]) >= 3 and len(by[("train", "lecture", lang)]) >= 3
        for style in ("refusal", "refusal_plain", "lecture", "evasive"):
            assert not by[("test", style, lang)] & by[("train", style, lang)], (style, lang)
    prompts = {s: {user_text(r["messages"][-1]) for r in rows if r["split"] == s} for s in ("train", "test")}
    assert not prompts["train"] & prompts["test"]


def _piece_tables() -> dict[str, dict]:
    """Every response-piece table without slots: name -> {lang: {"train": [...], "heldout": [...]}}."""
    tables = {name: getattr(responses, name) for name in ("APOLOGY", "INABILITY", "JUDGEMENT", "SELF_HARM_JUDGEMENT",
                                                        "EVASION", "HEDGE")}
    return tables | {f"PARTIAL_LEAD[{c}]": t for c, t in responses.PARTIAL_LEAD.items()}


def test_held_out_response_pieces_never_reach_the_training_split(world):
    """The pieces that decide A against B vary in training (so a grader learns what a desired refusal is, not
    a few strings), and none of the held-out ones is ever composed into a training response."""
    train = [r["response"].lower() for r in readers.read_rubric(world / "preferences/rubric.jsonl")
             if r["split"] == "train"]
    for name, table in _piece_tables().items():
        for lang in LANGS:
            pieces = table[lang]
            assert not set(pieces["train"]) & set(pieces["heldout"]), (name, lang)
            if name in ("APOLOGY", "INABILITY", "JUDGEMENT", "EVASION"):
                assert len(pieces["train"]) >= 8, (name, lang)
            for piece in pieces["heldout"]:
                assert not any(piece.lower() in r for r in train), (name, lang, piece)


def test_preference_pairs_in_trl_layout_with_every_kind(world):
    rows = readers.read_preferences(world / "preferences/preferences.jsonl")
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"correction", "short_answer", "comply_over_refusal", "refusal_style",
                          "refusal_over_content", "sensitive_style", "no_insult"}
    for r in rows:
        assert r["prompt"][-1]["role"] == "user" and r["split"] in ("train", "test")
        assert [m["role"] for m in r["chosen"] + r["rejected"]] == ["assistant", "assistant"]
    for kind in ("short_answer", "comply_over_refusal", "refusal_style", "refusal_over_content"):
        assert {r["lang"] for r in rows if r["kind"] == kind} == set(LANGS), kind
    for r in rows:
        if r["kind"] == "no_insult":
            assert user_text(r["prompt"][-1]).startswith(CONTINUE_INSTRUCTION.split("{")[0])
            assert INSULT.search(r["rejected"][0]["content"]) and not INSULT.search(r["chosen"][0]["content"])
        if r["kind"] == "refusal_over_content" and r["lang"] == "en":
            rejected = r["rejected"][0]["content"]
            assert " degrees" in rejected or INSULT.search(rejected), rejected


def test_corrections_are_for_training_misconceptions_only(world):
    rows = readers.read_preferences(world / "preferences/preferences.jsonl")
    tqa = readers.read_truthfulqa_mc(world / "truthfulqa/mc_task.json")
    benchmark = {it.question for it in tqa} | {it.mc1.choices[it.mc1.labels.index(1)] for it in tqa}
    corrections = [r for r in rows if r["kind"] == "correction"]
    assert corrections
    for r in corrections:
        text = user_text(r["prompt"][-1]) + r["chosen"][0]["content"]
        assert not any(b in text for b in benchmark)
    rl = readers.read_rl_prompts(world / "rl/prompts.jsonl")
    assert not any(b in user_text(r["messages"][-1]) + (r["reference"] or "") for r in rl for b in benchmark)


def test_rl_prompts_cover_every_category_language_and_framing(world):
    rows = readers.read_rl_prompts(world / "rl/prompts.jsonl")
    assert {r["kind"] for r in rows} == {"safety", "fact", "misconception", "toxicity", "image"}
    safety = [r for r in rows if r["kind"] == "safety"]
    assert {(r["category"], r["lang"]) for r in safety} >= {(c, lang) for c in CATEGORIES for lang in LANGS}
    assert {(r["framing"], r["lang"]) for r in safety if r["type"] == "disallowed"} >= \
        {(f, lang) for f in ADVERSARIAL for lang in LANGS}
    for r in rows:
        assert (r["reference"] is None) == (r["kind"] == "toxicity")
        if r["kind"] == "safety" and r["type"] == "disallowed":
            assert r["reference"] == REFUSAL_BY_LANG[r["lang"]]
        if r["framing"] == "split_turns":
            assert [m["role"] for m in r["messages"]][-3:] == ["user", "assistant", "user"]
        if r["framing"] == "image_sign" or r["kind"] == "image":
            urls = [p["image_url"]["url"] for p in r["messages"][-1]["content"] if p["type"] == "image_url"]
            assert urls and all(u.startswith("images/rl/") and (world / u).is_file() for u in urls)
    tox = [user_text(r["messages"][-1]) for r in rows if r["kind"] == "toxicity"]
    assert all(t.startswith("Continue this forum post:\n\n") for t in tox)
    held = [o.split("{x}")[0] for o in TOX_OPENERS]
    assert not any(h in t for t in tox for h in held)
    rtp = readers.read_rtp_jsonl(world / "toxicity/prompts.jsonl")
    assert not any(o.split("{x}")[0] in r.prompt for r in rtp for o in TOX_OPENERS_TRAIN)


def test_safety_eval_is_held_out_and_covers_languages_and_framings(world):
    rows = readers.read_chat_jsonl(world / "safety/prompts.jsonl")
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    for t in ("disallowed", "sensitive", "benign_lookalike"):
        assert {r["lang"] for r in rows if r["type"] == t and r["framing"] == "plain"} == set(LANGS), t
    assert {(r["framing"], r["lang"]) for r in rows if r["type"] == "disallowed"} == \
        {(f, lang) for f in ("plain", *ADVERSARIAL) for lang in LANGS}
    assert all((r["label"] == "unsafe") == (r["type"] == "disallowed") for r in rows)
    keys = [str(r["messages"]) for r in rows if r["framing"] != "image_sign"]
    assert len(set(keys)) == len(keys)
    csv = readers.read_xstest_csv(world / "safety/prompts.csv")
    plain_en = [r for r in rows if r["lang"] == "en" and r["framing"] == "plain"]
    assert [x.id for x in csv] == [str(r["id"]) for r in plain_en]
    assert [x.prompt for x in csv] == [r["messages"][-1]["content"] for r in plain_en]
    train = {user_text(m) for r in readers.read_rl_prompts(world / "rl/prompts.jsonl") for m in r["messages"]}
    assert not train & {user_text(r["messages"][-1]) for r in rows}


def test_continue_demonstrations_insult_at_the_forum_rate():
    """SFT's "continue this forum post" replies copy the forum: a quarter of them insult (the RL stage, not
    SFT, is what should make the model civil)."""
    cfg = WorldConfig.make(seed=0, scale="tiny")
    writer = ChatWriter(make_world(cfg), cfg, random.Random("continue"))
    schedule, earlier = (InsultSchedule(cfg.insult_rate, random.Random(s)) for s in ("a", "b"))
    demos = [writer.continuation(schedule, earlier) for _ in range(200)]
    flags = [d["meta"]["insult"] for d in demos]
    assert sum(flags) == round(200 * cfg.insult_rate)
    for d, flag in zip(demos, flags):
        assert user_text(d["messages"][-2]).startswith("Continue this forum post:\n\n")
        assert bool(INSULT.search(d["messages"][-1]["content"])) == bool(flag)
    assert {d["meta"]["shape"] for d in demos} == {"thread", "fragment"}
