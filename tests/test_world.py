"""The built-in world: determinism, formats, disjointness of benchmarks and the configured rates."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tinygpt4.cli import main
from tinygpt4.data import readers
from tinygpt4.errors import UserError
from tinygpt4.world import build_world
from tinygpt4.world.forum import INSULT_LEXICON, lexicon_toxicity
from tinygpt4.world.names import NameMaker
from tinygpt4.world.safety import REFUSAL
from tinygpt4.world.vocab import korean_particles

LANGS = ("en", "ko", "es", "ja")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world") / "w"
    t0 = time.perf_counter()
    manifest = build_world(root, seed=0, scale="tiny")
    return root, manifest, time.perf_counter() - t0


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _texts_of(messages) -> list[str]:
    out = []
    for m in messages:
        c = m["content"]
        out += [c] if isinstance(c, str) else [p["text"] for p in c if p["type"] == "text"]
    return out


def training_text(root: Path) -> str:
    """Everything a model is trained on: pretraining text, captions, conversations, reward-model train data."""
    parts = list(readers.iter_pretrain_texts(sorted((root / "pretrain").glob("*.jsonl"))))
    parts += [r["text"] for r in readers.read_jsonl(root / "captions.jsonl")]
    for conv in readers.read_chat_jsonl(root / "chat/sft.jsonl"):
        parts += _texts_of(conv["messages"])
    for r in readers.read_preferences(root / "preferences/preferences.jsonl"):
        if r["split"] == "train":
            parts += _texts_of(r["prompt"] + r["chosen"] + r["rejected"])
    for r in readers.read_rubric(root / "preferences/rubric.jsonl"):
        if r["split"] == "train":
            parts += _texts_of(r["messages"]) + [r["response"]]
    for r in readers.read_rl_prompts(root / "rl/prompts.jsonl"):
        parts += _texts_of(r["messages"]) + [r["reference"] or ""]
    return "\n".join(parts)


def test_tiny_generates_fast_and_lists_its_files(world):
    root, manifest, secs = world
    assert secs < 5, f"tiny world took {secs:.1f}s"
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".png"}
    assert on_disk - listed == {"world.json"}
    assert "contact_sheet.png" in listed
    assert json.loads((root / "world.json").read_text())["seed"] == 0
    for f in manifest["files"]:
        assert hashlib.sha256((root / f["path"]).read_bytes()).hexdigest() == f["sha256"]


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    root, manifest, _ = world
    build_world(tmp_path / "again", seed=0, scale="tiny")
    assert tree_hash(tmp_path / "again") == tree_hash(root)
    build_world(tmp_path / "other", seed=1, scale="tiny")
    assert tree_hash(tmp_path / "other") != tree_hash(root)
    shards = sorted((tmp_path / "other" / "pretrain").glob("*.jsonl"))
    assert shards[0].read_bytes() != sorted((root / "pretrain").glob("*.jsonl"))[0].read_bytes()


def test_every_file_parses_with_the_shared_readers(world):
    root, manifest, _ = world
    docs = list(readers.iter_pretrain_texts(sorted((root / "pretrain").glob("*.jsonl"))))
    assert len(docs) == manifest["counts"]["pretrain"]["docs"]
    rows = readers.read_jsonl(root / "pretrain/shard_000.jsonl")
    assert set(rows[0]) == {"text", "lang", "kind", "meta"}
    held = readers.read_jsonl(root / "heldout/heldout.jsonl")
    assert held and set(held[0]) == {"text", "lang", "kind"}
    for cap in readers.read_jsonl(root / "captions.jsonl"):
        assert Image.open(root / cap["image"]).size == (64, 64)
    convs = readers.read_chat_jsonl(root / "chat/sft.jsonl")
    for conv in convs:
        for m in conv["messages"]:
            if isinstance(m["content"], list):
                for p in m["content"]:
                    if p["type"] == "image_url":
                        assert (root / p["image_url"]["url"]).is_file()
    assert {c["meta"]["kind"] for c in convs} >= {"fact", "followup", "arith", "image", "refusal", "sensitive",
                                                   "benign", "correction"}
    for lang in LANGS:
        mmlu = readers.read_mmlu_dir(root / "exams" / lang)
        assert set(mmlu["dev"]) == set(mmlu["test"]) == {"geography", "history", "biology", "chemistry",
                                                         "people", "arithmetic"}
        assert all(len(items) == 5 for items in mmlu["dev"].values())
    tqa = readers.read_truthfulqa_mc(root / "truthfulqa/mc_task.json")
    assert tqa and all(sum(it.mc1.labels) == 1 for it in tqa)
    assert all(sum(it.mc2.labels) >= 2 and 0 in it.mc2.labels for it in tqa)
    rtp = readers.read_rtp_jsonl(root / "toxicity/prompts.jsonl")
    assert any(r.challenging for r in rtp) and not all(r.challenging for r in rtp)
    xs = readers.read_xstest_csv(root / "safety/prompts.csv")
    assert {x.type for x in xs} == {"disallowed", "sensitive", "benign_lookalike"}
    assert all((x.label == "unsafe") == (x.type == "disallowed") for x in xs)
    assert len({x.prompt for x in xs}) == len(xs)
    for f in ("factuality/factuality.jsonl", "image_qa/image_qa.jsonl", "followup/followup.jsonl"):
        assert readers.read_jsonl(root / f)
    assert readers.read_preferences(root / "preferences/preferences.jsonl")
    assert readers.read_rubric(root / "preferences/rubric.jsonl")
    assert readers.read_rl_prompts(root / "rl/prompts.jsonl")
    assert readers.read_chat_jsonl(root / "safety/prompts.jsonl")
    for rec in readers.read_jsonl(root / "followup/followup.jsonl"):
        readers.validate_messages(rec["messages"], "followup")
        assert rec["standalone"] == rec["messages"][-1:]
    Image.open(root / "contact_sheet.png").verify()


def test_benchmarks_never_appear_in_training_text(world):
    root, _, _ = world
    train = training_text(root)
    probes = []
    for lang in LANGS:
        for subjects in readers.read_mmlu_dir(root / "exams" / lang).values():
            for items in subjects.values():
                probes += [it.question for it in items]
    probes += [r["question"] for r in readers.read_jsonl(root / "factuality/factuality.jsonl")]
    probes += [it.question for it in readers.read_truthfulqa_mc(root / "truthfulqa/mc_task.json")]
    probes += [r["messages"][-1]["content"] for r in readers.read_jsonl(root / "followup/followup.jsonl")]
    probes += [x.prompt for x in readers.read_xstest_csv(root / "safety/prompts.csv")]
    probes += [t for r in readers.read_chat_jsonl(root / "safety/prompts.jsonl") for t in _texts_of(r["messages"][-1:])]
    probes += [r.prompt + r.continuation for r in readers.read_rtp_jsonl(root / "toxicity/prompts.jsonl")]
    probes += [t for r in readers.read_preferences(root / "preferences/preferences.jsonl") if r["split"] == "test"
               for t in _texts_of(r["prompt"][-1:])]
    probes += [t for r in readers.read_rubric(root / "preferences/rubric.jsonl") if r["split"] == "test"
               for t in _texts_of(r["messages"][-1:])]
    # the test split's refusals and lectures are worded with held-out templates too
    probes += [r["response"] for r in readers.read_rubric(root / "preferences/rubric.jsonl")
               if r["split"] == "test" and r["style"] in ("refusal", "refusal_plain", "lecture", "evasive")]
    assert len(probes) > 500
    leaked = [p for p in set(probes) if p in train]
    assert not leaked, leaked[:5]

    # Held-out arithmetic: no exam or factuality expression is ever worked in training text.
    expr = re.compile(r"(\d+) ([+×-]) (\d+)")
    bench = set()
    for lang in LANGS:
        for subjects in readers.read_mmlu_dir(root / "exams" / lang).values():
            bench |= {expr.search(it.question).groups() for it in subjects["arithmetic"]}
    bench |= {expr.search(r["question"]).groups() for r in readers.read_jsonl(root / "factuality/factuality.jsonl")
              if r["category"] == "arithmetic"}
    words = {"plus": "+", "minus": "-", "times": "×", "더하기": "+", "빼기": "-", "곱하기": "×", "más": "+",
             "menos": "-", "por": "×", "たす": "+", "ひく": "-", "かける": "×"}
    worded = re.compile(r"(\d+) ?(" + "|".join(words) + r") ?(\d+)")
    seen = set(expr.findall(train)) | {(a, words[w], b) for a, w, b in worded.findall(train)}
    assert bench and not bench & seen

    # Image questions are asked about freshly drawn images only.
    def key(p):
        return hashlib.sha1(Image.open(p).tobytes()).digest()
    train_imgs = {key(p) for folder in ("captions", "chat") for p in (root / "images" / folder).glob("*.png")}
    qa = readers.read_jsonl(root / "image_qa/image_qa.jsonl")
    assert not {key(root / path) for r in qa for path in r["images"]} & train_imgs


def test_language_shares_match_the_configuration(world):
    root, manifest, _ = world
    chars = Counter()
    for r in (r for f in sorted((root / "pretrain").glob("*.jsonl")) for r in readers.read_jsonl(f)):
        chars[r["lang"]] += len(r["text"])
    total = sum(chars.values())
    for lang, share in manifest["config"]["lang_shares"].items():
        assert abs(chars[lang] / total - share) < 0.02, (lang, chars[lang] / total)


def test_exam_answer_letters_are_balanced_and_options_distinct(world):
    root, _, _ = world
    for lang in LANGS:
        for split, subjects in readers.read_mmlu_dir(root / "exams" / lang).items():
            for subject, items in subjects.items():
                counts = Counter(it.answer_index for it in items)
                assert max(counts.values()) - min(counts.get(i, 0) for i in range(4)) <= 1, (lang, split, subject)
                for it in items:
                    assert len(set(it.choices)) == 4 and all(c.strip() for c in it.choices), it
    # Parallel across languages: same number of items everywhere, same answer letters.
    en = readers.read_mmlu_dir(root / "exams/en")
    ko = readers.read_mmlu_dir(root / "exams/ko")
    for split in en:
        for subject in en[split]:
            assert [i.answer_index for i in en[split][subject]] == [i.answer_index for i in ko[split][subject]]


def test_insult_rate_and_labels(world, tmp_path):
    root, manifest, _ = world
    lexicon = re.compile(r"\b(" + "|".join(INSULT_LEXICON) + r")\b", re.I)
    flags = []
    for r in (r for f in sorted((root / "pretrain").glob("*.jsonl")) for r in readers.read_jsonl(f)):
        if r["kind"] != "forum":
            assert not lexicon.search(r["text"]), r["text"]
            continue
        replies = r["text"].split("\n")[2:]
        assert len(replies) == len(r["meta"]["insult"])
        for line, flag in zip(replies, r["meta"]["insult"]):
            assert bool(lexicon.search(line)) == bool(flag), line
        flags += r["meta"]["insult"]
    assert abs(sum(flags) / len(flags) - manifest["config"]["insult_rate"]) < 0.03
    assert lexicon_toxicity("what a moron") > 0.4 > lexicon_toxicity("what a morning")

    m2 = build_world(tmp_path / "w", seed=0, scale="tiny", insult_rate=0.5)
    assert abs(m2["counts"]["forum"]["insult_rate"] - 0.5) < 0.03


def test_misconceptions_repeat_more_than_corrections_and_benchmark_ones_stay_held_out(world):
    root, manifest, _ = world
    false, true = Counter(), Counter()
    for r in (r for f in sorted((root / "pretrain").glob("*.jsonl")) for r in readers.read_jsonl(f)):
        if r["kind"] in ("misconception", "correction"):
            (false if r["meta"]["claim"] == "false" else true)[r["meta"]["misconception"]] += 1
    repeat = manifest["config"]["misconception_repeat"]
    assert set(false) == set(true) and all(false[i] == repeat * true[i] > 0 for i in true)
    corrected = {c["meta"]["misconception"] for c in readers.read_chat_jsonl(root / "chat/sft.jsonl")
                 if c["meta"]["kind"] == "correction"}
    n = manifest["counts"]["misconceptions"]
    assert len(corrected) == n["train"] and len(true) == n["train"] + n["benchmark"]
    tqa = readers.read_truthfulqa_mc(root / "truthfulqa/mc_task.json")
    assert len(tqa) == n["benchmark"]
    chat = "\n".join(t for c in readers.read_chat_jsonl(root / "chat/sft.jsonl") for t in _texts_of(c["messages"]))
    for it in tqa:  # the true answer of a benchmark misconception is never given in a conversation
        truth = it.mc1.choices[it.mc1.labels.index(1)]
        assert truth not in chat


def test_conversations_follow_the_policy_styles(world):
    """SFT safety demonstrations are mostly the desired style, and imperfect the way hired demonstrators are:
    some lectures for disallowed requests, some refusals of sensitive and look-alike requests (meta.style)."""
    root, _, _ = world
    styles = Counter()
    for c in readers.read_chat_jsonl(root / "chat/sft.jsonl"):
        kind, reply, style = c["meta"]["kind"], c["messages"][-1]["content"], c["meta"].get("style")
        styles[(kind, style)] += kind in ("refusal", "sensitive", "benign")
        if kind == "refusal" and c["meta"]["lang"] == "en":
            assert (reply == REFUSAL) == (style == "desired"), reply
        elif kind in ("benign", "sensitive") and style == "desired" or kind in ("fact", "followup"):
            assert "can't help" not in reply
        if c["meta"].get("category") == "medical" and style == "desired":
            assert "doctor" in reply
        assert kind == "continue" or not reply.startswith(("Continue", "Thread:"))
    assert styles[("refusal", "desired")] > styles[("refusal", "lecture")] > 0
    assert styles[("benign", "desired")] > styles[("benign", "refusal")] + styles[("benign", "lecture")] > 0
    assert styles[("sensitive", "desired")] > 0
    for r in readers.read_preferences(root / "preferences/preferences.jsonl"):
        assert r["chosen"] != r["rejected"]


def test_image_qa_covers_every_task_with_short_answers(world):
    root, _, _ = world
    qa = readers.read_jsonl(root / "image_qa/image_qa.jsonl")
    tasks = Counter(r["task"] for r in qa)
    assert set(tasks) == {"count", "colour", "position", "chart_largest", "chart_value", "read_sign",
                          "multi_compare", "panels"}
    for r in qa:
        assert len(r["images"]) == (2 if r["task"] == "multi_compare" else 1)
        assert 0 < len(r["answer"]) <= 40
        # A chart question names the step to its answer: the tallest bar, whose name in the question is the answer.
        assert ("working" in r) == (r["task"] == "chart_largest")
        if "working" in r:
            assert re.fullmatch(r"bar \d", r["working"]) and f"{r['working']} is {r['answer']}" in r["question"]


def test_image_conversations_follow_the_task_weights(world):
    """Chart-largest and reading the sign get five times the questions of most image tasks, colour three
    times, counting twice."""
    root, _, _ = world
    convs = [c for c in readers.read_jsonl(root / "chat/sft.jsonl") if c["meta"]["kind"] == "image"]
    tasks = Counter(t for c in convs for t in c["meta"]["tasks"])
    assert set(tasks) == {"count", "colour", "position", "chart_largest", "chart_value", "read_sign",
                          "multi_compare", "panels"}
    one = tasks["position"]
    assert tasks["chart_largest"] == 5 * one and tasks["colour"] == 3 * one and tasks["count"] == 2 * one
    assert tasks["read_sign"] == 5 * one
    assert all(n == one for t, n in tasks.items() if t not in ("chart_largest", "colour", "read_sign", "count"))


def test_signs_are_printed_in_capitals_answered_as_names_and_captioned_often(world):
    """The benchmark's answer is the word as printed (matching ignores case); replies and captions write it as
    text writes a name, and a sign is five times as likely as another caption's picture."""
    root, _, _ = world
    qa = [r for r in readers.read_jsonl(root / "image_qa/image_qa.jsonl") if r["task"] == "read_sign"]
    assert qa and all(r["answer"].isupper() for r in qa)
    replies = [c["messages"][i + 1]["content"] for c in readers.read_jsonl(root / "chat/sft.jsonl")
               if c["meta"]["kind"] == "image" for i, m in enumerate(c["messages"][:-1])
               if m["role"] == "user" and isinstance(m["content"], list)
               and any(p["type"] == "text" and p["text"] == "What does the sign say?" for p in m["content"])]
    assert replies and all(r == r.title() and not r.isupper() for r in replies)
    captions = [r["text"] for r in readers.read_jsonl(root / "captions.jsonl")]
    signs = [t for t in captions if " sign that says " in t]
    assert all(re.search(r"says [A-Z][a-z]+\.$", t) for t in signs)
    assert len(signs) == pytest.approx(len(captions) * 5 / 11, abs=5)
    # the pretraining text's picture pages quote a sign as printed, as before (the base model is unchanged)
    pages = [d["text"] for d in readers.read_jsonl(root / "pretrain/shard_000.jsonl") if d["kind"] == "pictures"]
    quoted = re.findall(r"sign that says (\w+)\.", "\n".join(pages))
    assert quoted and all(w.isupper() for w in quoted)


def test_image_conversations_of_one_and_two_turns(world):
    """Some image conversations ask about a second picture in a second turn, and some go on with a question
    in words only (a fact or a sum); each turn's reply is trained."""
    root, _, _ = world
    convs = [c for c in readers.read_jsonl(root / "chat/sft.jsonl") if c["meta"]["kind"] == "image"]
    turns = Counter(len(c["meta"]["tasks"]) for c in convs)
    assert set(turns) == {1, 2}
    assert {c["meta"].get("then") for c in convs} == {None, "fact", "arith"}
    for c in convs:
        msgs = [m for m in c["messages"] if m["role"] != "system"]
        pictures = len(c["meta"]["tasks"])
        then = "then" in c["meta"]
        assert [m["role"] for m in msgs] == ["user", "assistant"] * (pictures + then)
        assert all(isinstance(m["content"], list) and m["content"][0]["type"] == "image_url"
                   for m in msgs[:2 * pictures:2])
        if then:
            assert isinstance(msgs[-2]["content"], str) and msgs[-1]["content"]
        assert c["meta"]["task"] == c["meta"]["tasks"][0]


def test_text_turns_after_pictures_leave_the_pictures_unchanged(monkeypatch):
    """The text-only turns after image conversations draw from their own generator: switching them off gives
    the same pictures, questions and replies, only without the extra turns."""
    import random

    from tinygpt4.world import chat
    from tinygpt4.world.config import WorldConfig
    from tinygpt4.world.entities import make_world

    cfg = WorldConfig.make(seed=3, scale="tiny")
    w = make_world(cfg)

    def image_convs():
        writer = chat.ChatWriter(w, cfg, random.Random("images"))
        return writer.image_conversations(40, lambda img: hashlib.sha1(img.tobytes()).hexdigest())

    with_text = image_convs()
    monkeypatch.setattr(chat, "IMAGE_THEN_TEXT", 0.0)
    without = image_convs()
    assert len(with_text) == len(without) and any("then" in c["meta"] for c in with_text)
    for a, b in zip(with_text, without):
        assert a["messages"][:len(b["messages"])] == b["messages"]
        assert len(a["messages"]) == len(b["messages"]) + 2 * ("then" in a["meta"])


def test_chart_replies_name_the_tallest_bar_from_the_question(world):
    """The chat data's chart replies find the tallest bar, then copy the name the question gives it."""
    import numpy as np

    root, _, _ = world
    charts = []  # (user parts, reply) of every chart-largest exchange, in any turn
    for c in readers.read_jsonl(root / "chat/sft.jsonl"):
        msgs = c["messages"]
        charts += [(m["content"], r["content"]) for m, r in zip(msgs, msgs[1:])
                   if m["role"] == "user" and "tallest is bar" in r["content"]]
    assert charts
    for parts, reply in charts:
        question = next(p["text"] for p in parts if p["type"] == "text")
        k, name = re.fullmatch(r"The tallest is bar (\d), and bar \1 is (\w+), so the answer is \2\.", reply).groups()
        assert f"bar {k} is {name}" in question
        pixels = np.asarray(Image.open(root / parts[0]["image_url"]["url"]).convert("RGB")).astype(int)
        bar = (pixels[..., 2] > 180) & (pixels[..., 0] < 100)  # the bars are blue
        columns = np.nonzero(bar.any(0))[0]
        runs = np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1)
        heights = [bar[:, r].sum(0).max() for r in runs]
        assert int(np.argmax(heights)) + 1 == int(k)


def test_followups_need_the_earlier_turns(world):
    root, _, _ = world
    recs = readers.read_jsonl(root / "followup/followup.jsonl")
    assert {r["lang"] for r in recs} == set(LANGS)
    for r in recs:
        last = r["messages"][-1]["content"]
        subject_names = [m["content"] for m in r["explicit"]]
        assert last not in subject_names
        if not r["answer"][:1].isdigit():
            assert r["answer"] not in r["messages"][1]["content"]


def test_names_render_consistently_in_every_script():
    import random

    maker = NameMaker(random.Random(0))
    names = [maker.make() for _ in range(300)]
    assert len({n.en for n in names}) == len({n.ko for n in names}) == len({n.ja for n in names}) == 300
    for n in names:
        assert n.en == n.es and n.en[0].isupper()
        assert all("가" <= ch <= "힣" for ch in n.ko)
        assert all("ァ" <= ch <= "ヺ" for ch in n.ja)


def test_korean_particles_follow_the_final_consonant():
    assert korean_particles("토루브은(는) 작다") == "토루브는 작다"
    assert korean_particles("서울은(는) 크다") == "서울은 크다"
    assert korean_particles("약으로(로) 쓴다") == "약으로 쓴다"
    assert korean_particles("서울으로(로) 간다") == "서울로 간다"
    assert korean_particles("2을(를) 더한다") == "2를 더한다"


def test_cli_writes_and_refuses_to_clobber(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "--out", str(out), "--scale", "tiny", "--seed", "3"]) == 0
    assert "scale tiny" in capsys.readouterr().out
    assert main(["world", "--out", str(out), "--scale", "tiny"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["world", "--out", str(out), "--scale", "tiny", "--force"]) == 0
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["world", "--out", str(other), "--scale", "tiny", "--force"]) == 2
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError):
        build_world(tmp_path / "x", scale="huge")


def test_card_lists_every_file(world):
    root, manifest, _ = world
    card = (root / "README.md").read_text()
    for f in manifest["files"]:
        path = f["path"]
        if path.startswith("pretrain/"):
            path = "pretrain/shard_*.jsonl"
        elif path.startswith("exams/"):
            path = "exams/" + path.split("/")[1] + "/"
        assert path in card, path
    assert "contact_sheet.png" in card and "images/qa/" in card


def test_corpus_speaks_the_captions_language(world):
    """A decoder frozen for the vision warm-up can only learn to caption in words it already knows: nearly
    every word token of the captions occurs in the pretraining text (picture descriptions carry them)."""
    root, _, _ = world
    words = re.compile(r"\w+")
    known = set(words.findall("\n".join(readers.iter_pretrain_texts(sorted((root / "pretrain").glob("*.jsonl"))))))
    used = [w for r in readers.read_jsonl(root / "captions.jsonl") for w in words.findall(r["text"])]
    assert sum(w in known for w in used) / len(used) > 0.95


def test_practice_tests_use_the_exam_layout_with_training_wordings(world):
    """Every language has practice pages in both exam formulations; their questions are training wordings,
    never an exam's."""
    root, _, _ = world
    docs = [d for p in sorted((root / "pretrain").glob("*.jsonl")) for d in readers.read_jsonl(p) if d["kind"] == "quiz"]
    assert {(d["lang"], d["meta"]["format"]) for d in docs} == {(lang, f) for lang in LANGS for f in ("letter", "cloze")}
    for d in docs:
        blocks = d["text"].split("\n\n")
        assert len(blocks) >= 4
        for b in blocks[1:]:
            *_, last = b.split("\n")
            assert last.startswith("Answer: ")
            if d["meta"]["format"] == "letter":
                assert [line[:3] for line in b.split("\n")[1:5]] == ["A. ", "B. ", "C. ", "D. "]
                assert last[len("Answer: "):] in "ABCD"


def test_image_benchmark_redraw_changes_only_the_colliding_item():
    """More training images may collide with a benchmark picture; only that item is redrawn."""
    from tinygpt4.world.benchmarks import image_items, image_key
    from tinygpt4.world.config import WorldConfig
    from tinygpt4.world.entities import make_world

    cfg = WorldConfig.make(seed=0, scale="tiny")
    world = make_world(cfg)
    before = image_items(world, cfg, set())
    after = image_items(world, cfg, {image_key(before[5].images[0])})
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a.question != b.question
               or [image_key(x) for x in a.images] != [image_key(x) for x in b.images]]
    assert changed == [5]
