"""Evaluations, tested against a scripted model (eval logic), a tiny random checkpoint (the local backend
against naive scoring) and a tiny HTTP server (the endpoint backend)."""

from __future__ import annotations

import csv
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tinygpt4.errors import UserError
from tinygpt4.evals import (
    bpb,
    calibration,
    factuality,
    followup,
    image_qa,
    multiple_choice,
    suite,
    truthfulqa,
)
from tinygpt4.evals.common import contains_answer, exact_match, normalize_answer
from tinygpt4.evals.protocol import LanguageModel, Unsupported, image_urls, text_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---- a scripted model ------------------------------------------------------------------------------------

class ScriptedLM:
    """Knows some facts: `facts` maps a question to its true answer text.

    loglikelihood: after a letter prompt, the letter of the true option gets -0.1 and others -3 (when
    `knows_letters`); in cloze form the true text gets -0.1 per character and others -1 per character.
    Unknown questions: every option -2. generate/complete answer from the facts, "I don't know" otherwise.
    """

    name = "scripted"

    def __init__(self, facts: dict[str, str], knows_letters: bool = True, supports_images: bool = True):
        self.facts = facts
        self.knows_letters = knows_letters
        self.supports_images = supports_images
        self.requests: list = []
        self.conversations: list = []

    def _question(self, context) -> str:
        if not isinstance(context, str):
            return text_of(context[-1]["content"])
        last = context.split("\n\n")[-1]
        return re.sub(r"^Q: ", "", last.split("\n")[0])

    def loglikelihood(self, requests):
        self.requests.extend(requests)
        out = []
        for ctx, cont in requests:
            q = self._question(ctx)
            truth = self.facts.get(q)
            option = cont.strip()
            if truth is None:
                out.append(-2.0)
            elif re.fullmatch(r"[A-D]", option):
                lines = ctx.split("\n\n")[-1].split("\n")
                true_letter = next((ln[0] for ln in lines if ln[1:3] == ". " and ln[3:] == truth), None)
                out.append(-0.1 if (self.knows_letters and option == true_letter) else -3.0)
            else:
                out.append(-0.1 * len(option) if option == truth else -1.0 * len(option))
        return out

    def loglikelihood_rolling(self, texts):
        return [-math.log(2) * len(t.encode("utf-8")) for t in texts]

    def _answer(self, question: str) -> str:
        return self.facts.get(question.strip(), "I don't know")

    def generate(self, conversations, max_tokens=64, temperature=0.0, stop=None):
        self.conversations.extend(conversations)
        out = []
        for conv in conversations:
            last = conv[-1]["content"]
            urls = image_urls(last)
            if urls and image_qa.blank_image_url() in urls:
                out.append("grey")
                continue
            if len(conv) == 1 and text_of(last).startswith("And"):  # a follow-up without its context
                out.append("no idea")
                continue
            out.append(self._answer(text_of(last)) + ".\nMore text.")
        return out

    def complete(self, prompts, max_tokens=64, stop=None):
        return [" " + self._answer(re.split(r"[:：] ?", p.split("\n")[-2], maxsplit=1)[1]) for p in prompts]


def write_mmlu(root: Path, subjects: dict[str, dict[str, list[tuple]]]) -> Path:
    for subject, splits in subjects.items():
        for split, rows in splits.items():
            d = root / split
            d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{subject}_{split}.csv", "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
    return root


GEO = [("What is the capital of Varo?", "Lumen", "Tessa", "Orbis", "Kalda", "A"),
       ("Which river runs through Orbis?", "Amble", "Siro", "Hush", "Pell", "B"),
       ("What is the largest city in Kalda?", "Nim", "Osk", "Tarra", "Vell", "C")]
CHEM = [("What colour is zanthium?", "red", "blue", "green", "violet", "D"),
        ("What does morite dissolve in?", "water", "oil", "acid", "alcohol", "A")]


@pytest.fixture
def exam_dir(tmp_path):
    return write_mmlu(tmp_path / "exams", {
        "high_school_geography": {"dev": GEO[:2], "test": GEO},
        "chemistry_of_the_world": {"dev": CHEM[:1], "test": CHEM},
    })


def facts_from(rows, known: int | None = None) -> dict[str, str]:
    facts = {}
    for q, *opts, ans in rows[:known]:
        facts[q] = opts["ABCD".index(ans)]
    return facts


# ---- prompts ---------------------------------------------------------------------------------------------

def test_letter_prompt_follows_lm_eval_mmlu_template():
    item = {"question": "  What is 2+2? ", "choices": ["3", "4", "5", "6"], "answer": 1}
    shot = {"question": "What is 1+1?", "choices": ["2", "3", "4", "5"], "answer": 0}
    reqs = multiple_choice.requests_for("elementary_mathematics", item, [shot], "letter")
    expected_ctx = (
        "The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
        "What is 1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n"
        "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )
    assert reqs == [(expected_ctx, " A"), (expected_ctx, " B"), (expected_ctx, " C"), (expected_ctx, " D")]


def test_cloze_prompt_scores_option_text():
    item = {"question": "What is 2+2?", "choices": ["3", "four", "5", "6"], "answer": 1}
    shot = {"question": "What is 1+1?", "choices": ["2", "3", "4", "5"], "answer": 0}
    reqs = multiple_choice.requests_for("math", item, [shot], "cloze")
    assert reqs[1] == ("What is 1+1?\nAnswer: 2\n\nWhat is 2+2?\nAnswer:", " four")
    assert [c for _, c in reqs] == [" 3", " four", " 5", " 6"]


def test_cloze_prediction_normalises_by_characters():
    item = {"question": "q", "choices": ["ab", "abcdefghij"], "answer": 1}
    # raw: option 0 wins (-2 > -4); per character: option 1 wins (-0.4 > -1)
    assert multiple_choice.prediction(item, [-2.0, -4.0], "cloze") == 1
    assert multiple_choice.prediction(item, [-2.0, -4.0], "letter") == 0


# ---- multiple choice -------------------------------------------------------------------------------------

def test_multiple_choice_summary_by_subject_and_category(exam_dir):
    facts = facts_from(GEO) | facts_from(CHEM, known=1)
    lm = ScriptedLM(facts, knows_letters=False)
    res = multiple_choice.evaluate(lm, exam_dir, task="exams_en", shots=(0, 2))
    s = res["summary"]
    assert res["task"] == "exams_en" and s["n"] == 5 and s["subjects"] == 2
    # cloze: all 3 geography + 1 of 2 chemistry known -> 4/5; letters: never known, ties -> option A
    assert s["acc_cloze_0shot"] == s["acc_cloze_2shot"] == s["acc_cloze"] == 0.8
    assert s["acc_letter"] == pytest.approx(2 / 5)
    assert s["headline_shots"] == 2
    assert s["by_subject"]["high_school_geography"]["acc_cloze_2shot"] == 1.0
    assert s["by_subject"]["chemistry_of_the_world"]["acc_cloze_2shot"] == 0.5
    assert s["by_category"]["social sciences"]["n"] == 3
    assert s["by_category"]["STEM"]["n"] == 2
    assert s["chance"] == 0.25
    item = res["items"][0]
    assert set(item["ll"]) == {"letter_0shot", "cloze_0shot", "letter_2shot", "cloze_2shot"}
    # few-shot examples come from dev (first k), and the number of requests is 4 per item per setting
    assert len(lm.requests) == 5 * 4 * 4
    assert any(ctx.startswith("What is the capital of Varo?\nAnswer: Lumen\n\n") for ctx, _ in lm.requests)


def test_multiple_choice_letter_knowledge(exam_dir):
    lm = ScriptedLM(facts_from(GEO) | facts_from(CHEM), knows_letters=True)
    s = multiple_choice.evaluate(lm, exam_dir, shots=(0,))["summary"]
    assert s["acc_letter"] == 1.0 and s["acc_cloze"] == 1.0


def test_multiple_choice_bad_folder(tmp_path):
    with pytest.raises(UserError):
        multiple_choice.evaluate(ScriptedLM({}), tmp_path / "nope")


def test_category_of_known_and_world_subjects():
    assert multiple_choice.category_of("abstract_algebra") == "STEM"
    assert multiple_choice.category_of("world_religions") == "humanities"
    assert multiple_choice.category_of("geography_of_varo") == "social sciences"
    assert multiple_choice.category_of("zzz") == "other"


# ---- TruthfulQA ------------------------------------------------------------------------------------------

def write_tqa(path: Path) -> Path:
    data = [
        {"question": "Does cracking knuckles cause arthritis?",
         "mc1_targets": {"No, it does not.": 1, "Yes, it does.": 0, "Only in winter.": 0},
         "mc2_targets": {"No, it does not.": 1, "No.": 1, "Yes, it does.": 0}},
        {"question": "What happens if you swallow gum?",
         "mc1_targets": {"It stays for seven years.": 0, "It passes through you.": 1},
         "mc2_targets": {"It passes through you.": 1, "It stays for seven years.": 0}},
    ]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_truthfulqa_mc1_mc2_and_formats(tmp_path):
    path = write_tqa(tmp_path / "mc_task.json")
    lm = ScriptedLM({"Does cracking knuckles cause arthritis?": "No, it does not."})
    res = truthfulqa.evaluate(lm, path, formats=("0shot", "5shot", "chat"))
    s = res["summary"]
    assert s["mc1_0shot"] == 0.5 and s["mc1_5shot"] == 0.5 and s["mc1_chat"] == 0.5
    # item 1 mc2: true {-1.6 ("No, it does not."), -3 ("No.")}, false {-13}; item 2 unknown: all -2 -> 0.5
    p = [math.exp(-1.6), math.exp(-3.0), math.exp(-13.0)]
    assert s["mc2_0shot"] == pytest.approx(((p[0] + p[1]) / sum(p) + 0.5) / 2, abs=1e-4)
    ctxs = {ctx if isinstance(ctx, str) else "chat" for ctx, _ in lm.requests}
    assert "Q: What happens if you swallow gum?\nA:" in ctxs
    assert truthfulqa.primer_text() + "\n\nQ: What happens if you swallow gum?\nA:" in ctxs
    chat = [(c, x) for c, x in lm.requests if not isinstance(c, str)]
    assert chat[0][0] == [{"role": "user", "content": "Does cracking knuckles cause arthritis?"}]
    assert not chat[0][1].startswith(" ")
    assert len(truthfulqa.QA_PRIMER) == 5


def test_truthfulqa_partially_unsupported_backend(tmp_path):
    path = write_tqa(tmp_path / "mc_task.json")

    class NoChat(ScriptedLM):
        def loglikelihood(self, requests):
            if any(not isinstance(c, str) for c, _ in requests):
                raise Unsupported("no chat template")
            return super().loglikelihood(requests)

    s = truthfulqa.evaluate(NoChat({}), path, formats=("0shot", "chat"))["summary"]
    assert s["formats"] == ["0shot"] and "chat" in s["unsupported_formats"]


def test_mc2_score_is_normalised_true_mass():
    assert truthfulqa.mc2_score([math.log(0.3), math.log(0.1)], [1, 0]) == pytest.approx(0.75)


# ---- calibration -----------------------------------------------------------------------------------------

def test_ece_perfectly_calibrated_is_zero():
    conf = [0.8] * 10
    correct = [True] * 8 + [False] * 2
    assert calibration.ece(conf, correct, scheme="width") == pytest.approx(0.0)
    assert calibration.ece(conf, correct, scheme="mass") == pytest.approx(0.0)


def test_ece_known_value_and_bins():
    conf = [0.95, 0.95, 0.55, 0.55]
    correct = [True, False, True, True]
    # width bins: [0.9,1.0): acc .5 conf .95 -> .45 ; [0.5,0.6): acc 1 conf .55 -> .45
    assert calibration.ece(conf, correct, scheme="width") == pytest.approx(0.45)
    bins = calibration.reliability_bins(conf, correct, 10, "width")
    assert [b["n"] for b in bins] == [2, 2]
    mass = calibration.reliability_bins(list(range(20)), [True] * 20, 10, "mass")
    assert [b["n"] for b in mass] == [2] * 10


def test_brier_multiclass():
    assert calibration.brier([[1.0, 0.0], [0.5, 0.5]], [0, 1]) == pytest.approx((0 + 0.5) / 2)


def test_calibration_from_multiple_choice(exam_dir):
    lm = ScriptedLM(facts_from(GEO) | facts_from(CHEM, known=1))
    mc = multiple_choice.evaluate(lm, exam_dir, shots=(0,))
    res = calibration.from_multiple_choice(mc)
    s = res["summary"]
    assert s["acc_letter"] == mc["summary"]["acc_letter"]
    for key in ("ece_width_letter", "ece_mass_letter", "brier_letter", "ece_width_cloze"):
        assert 0 <= s[key] <= 2
    assert sum(b["n"] for b in s["reliability"]["letter"]["width"]) == 5
    assert len(res["items"]) == 5 and len(res["items"][0]["probs_letter"]) == 4


# ---- generation tasks ------------------------------------------------------------------------------------

def test_normalised_matching():
    assert normalize_answer("The  Lumen!") == "lumen"
    assert normalize_answer("ＬＵＭＥＮ。") == "lumen"  # NFKC + CJK punctuation
    assert normalize_answer("서울이다.") == "서울이다"
    assert exact_match("Lumen.\nIt is a big city.", "lumen")
    assert not exact_match("It is Lumen.", "Lumen")
    assert contains_answer("It is Lumen.", "Lumen")
    assert not contains_answer("Lumenx", "Lumen")
    assert not contains_answer("No.\nLumen", "Lumen")  # only the first line counts
    assert contains_answer("루멘입니다.", "루멘")
    # a reply that works its way to the answer is graded on what follows its last "answer is"
    assert exact_match("The tallest is bar 2, and bar 2 is Kira, so the answer is Kira.", "Kira")
    assert not exact_match("The tallest is bar 1, and bar 1 is Kira, so the answer is Habo.", "Kira")
    assert exact_match("The answer is 4.", "4") and not exact_match("The answer is 4.\nThe answer is 5.", "5")


def test_factuality_by_category(tmp_path):
    path = tmp_path / "factuality.jsonl"
    rows = [{"question": "Capital of Varo?", "answer": "Lumen", "category": "geography", "lang": "en"},
            {"question": "Colour of zanthium?", "answer": "red", "category": "chemistry", "lang": "en"},
            {"question": "바로의 수도는?", "answer": "루멘", "category": "geography", "lang": "ko"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    lm = ScriptedLM({"Capital of Varo?": "Lumen", "바로의 수도는?": "루멘"})
    res = factuality.evaluate(lm, path, chat=True)
    s = res["summary"]
    assert s["exact_match"] == pytest.approx(2 / 3, abs=1e-3)
    assert s["by_category"]["geography"] == {"n": 2, "exact_match": 1.0, "contains": 1.0}
    assert s["by_lang"]["ko"]["contains"] == 1.0
    ja = tmp_path / "ja.jsonl"
    ja.write_text(json.dumps({"question": "ロデンプンはどの大陸?", "answer": "ギテプ", "category": "geo", "lang": "ja"},
                             ensure_ascii=False), encoding="utf-8")
    lm_ja = ScriptedLM({"ロデンプンはどの大陸?": "ロデンプンはギテプ大陸に位置しています"})
    s_ja = factuality.evaluate(lm_ja, ja)["summary"]
    assert s_ja["contains"] == 1.0 and s_ja["exact_match"] == 0.0
    base = factuality.evaluate(lm, path, chat=False)["summary"]
    assert base["exact_match"] == pytest.approx(2 / 3, abs=1e-3)


class DistractedLM(ScriptedLM):
    """Knows its facts only when asked first: after a picture turn it describes shapes."""

    def generate(self, conversations, max_tokens=64, temperature=0.0, stop=None):
        self.asked = list(conversations)
        first = super().generate([c[-1:] for c in conversations], max_tokens, temperature, stop)
        return [out if len(c) == 1 else "Three shapes: circles." for c, out in zip(conversations, first)]


def test_factuality_after_a_picture(tmp_path):
    """With prefaces, each question is asked again after a picture turn (cycling through them) and scored
    on its own; base-model prompts have no turns, so they get no second pass."""
    path = tmp_path / "factuality.jsonl"
    rows = [{"question": "Capital of Varo?", "answer": "Lumen", "category": "geography"},
            {"question": "Colour of zanthium?", "answer": "red", "category": "chemistry"},
            {"question": "Capital of Kira?", "answer": "Habo", "category": "geography"}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    pic = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                                       {"type": "text", "text": "How many shapes?"}]}
    prefaces = [[pic, {"role": "assistant", "content": n}] for n in ("two", "three")]
    lm = DistractedLM({"Capital of Varo?": "Lumen", "Colour of zanthium?": "red", "Capital of Kira?": "Habo"})
    res = factuality.evaluate(lm, path, chat=True, prefaces=prefaces)
    s = res["summary"]
    assert s["contains"] == 1.0 and s["contains_after_picture"] == 0.0
    assert s["by_category"]["geography"]["contains_after_picture"] == 0.0
    assert [it["preface"] for it in res["items"]] == [0, 1, 0]
    asked = lm.asked[3:]
    assert [c[:2] for c in asked] == [prefaces[0], prefaces[1], prefaces[0]]
    assert [c[-1]["content"] for c in asked] == [r["question"] for r in rows]
    plain = ScriptedLM({"Capital of Varo?": "Lumen"})
    assert factuality.evaluate(plain, path, chat=True, prefaces=prefaces)["summary"]["contains_after_picture"] == pytest.approx(1 / 3, abs=1e-3)
    base = factuality.evaluate(lm, path, chat=False, prefaces=prefaces)
    assert "contains_after_picture" not in base["summary"] and base["config"]["prefaces"] == 0


def make_png(path: Path, colour=(255, 0, 0)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_image_qa_with_blind_baseline(tmp_path):
    make_png(tmp_path / "images" / "qa" / "0.png")
    make_png(tmp_path / "images" / "qa" / "1.png", (0, 0, 255))
    (tmp_path / "image_qa").mkdir()
    path = tmp_path / "image_qa" / "image_qa.jsonl"
    rows = [{"images": ["images/qa/0.png"], "question": "What colour is the square?", "answer": "red",
             "task": "colour"},
            {"images": ["images/qa/0.png"], "question": "What colour is the big square?", "answer": "Red",
             "task": "colour"},
            {"images": ["images/qa/1.png"], "question": "What colour is the circle?", "answer": "blue",
             "task": "colour"},
            {"images": ["images/qa/0.png", "images/qa/1.png"], "question": "How many squares?", "answer": "2",
             "task": "multi_compare"}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    lm = ScriptedLM({"What colour is the square?": "red", "What colour is the big square?": "blue",
                     "What colour is the circle?": "blue", "How many squares?": "3"})
    res = image_qa.evaluate(lm, path)
    s = res["summary"]
    assert s["acc"] == 0.5 and s["acc_blind"] == 0.0
    # Majority answer: "red" for colour (2 of 3, "Red" normalised), "2" for multi_compare; overall, each task's
    # own majority (3 of 4), not the most common answer across tasks (2 of 4).
    assert s["by_task"]["colour"] == {"n": 3, "acc": 0.6667, "acc_majority": 0.6667, "acc_blind": 0.0,
                                      "acc_after_turn": 0.6667}
    assert s["by_task"]["multi_compare"]["acc_majority"] == 1.0 and s["acc_majority"] == 0.75
    # each item again as the second turn, after the item half the list on and that item's reference answer
    after = lm.conversations[8]
    assert [m["role"] for m in after] == ["user", "assistant", "user"]
    assert after[0]["content"][-1]["text"] == "What colour is the circle?" and after[1]["content"] == "blue"
    assert after[2]["content"][-1]["text"] == "What colour is the square?"
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for m in (after[0], after[2])
               for p in m["content"][:-1])
    assert res["items"][0]["earlier"] == 2 and res["items"][0]["correct_after"] is True
    alone_and_after = image_qa.evaluate(ScriptedLM(lm.facts), path, blind_baseline=False)["summary"]
    assert "acc_blind" not in alone_and_after and alone_and_after["acc_after_turn"] == s["acc_after_turn"]
    sent = lm.conversations[3][0]["content"]
    assert [p["type"] for p in sent] == ["image_url", "image_url", "text"]
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in sent[:2])
    assert res["items"][3]["images"] == ["images/qa/0.png", "images/qa/1.png"]  # paths kept for the report
    text_only = image_qa.evaluate(ScriptedLM({}, supports_images=False), path)
    assert text_only["summary"]["unsupported"] is True


def test_image_qa_splits_worked_answers_into_the_step_and_the_answer(tmp_path):
    make_png(tmp_path / "0.png")
    path = tmp_path / "qa.jsonl"
    q = "The bars show rain: bar 1 is Gudo, bar 2 is Habo and bar 21 is Kira. Which got the most? ({})"
    rows = [{"images": ["0.png"], "question": q.format(i), "answer": "Habo", "task": "chart_largest",
             "working": "bar 2"} for i in range(4)]
    rows.append({"images": ["0.png"], "question": "What colour?", "answer": "red", "task": "colour"})
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    lm = ScriptedLM({q.format(0): "The tallest is bar 2, and bar 2 is Habo, so the answer is Habo",
                     q.format(1): "The tallest is Bar 2, and bar 2 is Gudo, so the answer is Gudo",  # look-up wrong
                     q.format(2): "The tallest is bar 21, and bar 21 is Kira, so the answer is Kira",  # bar wrong
                     q.format(3): "Habo",  # right, but no working to check
                     "What colour?": "red"})
    res = image_qa.evaluate(lm, path, blind_baseline=False)
    chart = res["summary"]["by_task"]["chart_largest"]
    assert chart["acc"] == 0.5 and chart["working_acc"] == 0.5 and chart["acc_given_working"] == 0.5
    assert [it.get("working_ok") for it in res["items"]] == [True, True, False, False, None]
    assert "working_acc" not in res["summary"]["by_task"]["colour"]
    path.write_text(json.dumps({**rows[0], "working": 2}), encoding="utf-8")
    with pytest.raises(UserError, match="record 1: \"working\" must be a string"):
        image_qa.load_items(path)


def test_followup_with_and_without_context(tmp_path):
    path = tmp_path / "followup.jsonl"
    rec = {"messages": [{"role": "user", "content": "Tell me about Varo."},
                        {"role": "assistant", "content": "Varo is a country."},
                        {"role": "user", "content": "And its capital?"}],
           "answer": "Lumen", "standalone": [{"role": "user", "content": "And its capital?"}]}
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    s = followup.evaluate(ScriptedLM({"And its capital?": "Lumen"}), path)["summary"]
    assert s["acc_with_context"] == 1.0 and s["acc_standalone"] == 0.0 and "acc_explicit" not in s
    rec["explicit"] = [{"role": "user", "content": "What is the capital of Varo?"}]
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    lm = ScriptedLM({"And its capital?": "Lumen", "What is the capital of Varo?": "It is Lumen"})
    s = followup.evaluate(lm, path)["summary"]
    assert s["acc_explicit"] == 1.0 and s["exact_explicit"] == 0.0


def test_bits_per_byte(tmp_path):
    path = tmp_path / "heldout.jsonl"
    rows = [{"text": "hello world", "lang": "en", "kind": "article"}, {"text": "안녕", "lang": "ko", "kind": "qa"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    s = bpb.evaluate(ScriptedLM({}), path)["summary"]
    assert s["bpb"] == pytest.approx(1.0)
    assert s["by_lang"]["ko"]["bytes"] == 6


# ---- suite and results -----------------------------------------------------------------------------------

def make_world(root: Path) -> Path:
    write_mmlu(root / "exams" / "en", {"high_school_geography": {"dev": GEO[:1], "test": GEO}})
    write_mmlu(root / "exams" / "ko", {"high_school_geography": {"dev": GEO[:1], "test": GEO[:2]}})
    (root / "truthfulqa").mkdir(parents=True)
    write_tqa(root / "truthfulqa" / "mc_task.json")
    (root / "factuality").mkdir()
    (root / "factuality" / "factuality.jsonl").write_text(
        json.dumps({"question": "Capital of Varo?", "answer": "Lumen", "category": "geo", "lang": "en"}) + "\n")
    (root / "heldout").mkdir()
    (root / "heldout" / "heldout.jsonl").write_text(json.dumps({"text": "abc", "lang": "en", "kind": "x"}) + "\n")
    return root


def test_run_suite_writes_every_result(tmp_path):
    world = make_world(tmp_path / "world")
    out = tmp_path / "evals" / "base"
    lm = ScriptedLM(facts_from(GEO) | {"Capital of Varo?": "Lumen"}, supports_images=False)
    summaries = suite.run_suite(lm, world, out, "base", log=None)
    assert set(summaries) == {"exams_en", "exams_ko", "calibration", "truthfulqa", "factuality", "bpb"}
    for task in summaries:
        data = json.loads((out / f"{task}.json").read_text(encoding="utf-8"))
        assert set(data) == {"task", "config", "summary", "items"} and data["task"] == task
    assert summaries["exams_en"]["acc_cloze"] == 1.0
    assert summaries["calibration"]["source"] == "exams_en"
    assert "mc1_chat" not in summaries["truthfulqa"]  # base stage: no chat format
    chat = suite.report_tasks(world, chat=True, images=True)
    assert ("truthfulqa", world / "truthfulqa" / "mc_task.json") in chat


def test_suite_asks_factuality_after_the_worlds_pictures(tmp_path):
    """A chat model that takes images also answers the factuality questions after a picture turn drawn from
    the world's image QA file, its image inlined; a text-only model or a base-model prompt does not."""
    world = make_world(tmp_path / "world")
    make_png(world / "images" / "qa" / "0.png")
    (world / "image_qa").mkdir()
    (world / "image_qa" / "image_qa.jsonl").write_text(json.dumps(
        {"images": ["images/qa/0.png"], "question": "What colour is it?", "answer": "red", "task": "colour"}))
    fact = world / "factuality" / "factuality.jsonl"
    lm = DistractedLM({"Capital of Varo?": "Lumen"})
    s = suite.run_task(lm, "factuality", fact, chat=True)["summary"]
    assert s["contains"] == 1.0 and s["contains_after_picture"] == 0.0
    turn = lm.asked[1]
    assert turn[0]["content"][0]["image_url"]["url"].startswith("data:image/png")
    assert turn[1] == {"role": "assistant", "content": "red"}
    assert "contains_after_picture" not in suite.run_task(lm, "factuality", fact, chat=False)["summary"]
    blind = ScriptedLM({"Capital of Varo?": "Lumen"}, supports_images=False)
    assert "contains_after_picture" not in suite.run_task(blind, "factuality", fact, chat=True)["summary"]


def test_task_specs(tmp_path):
    world = make_world(tmp_path / "world")
    assert suite.parse_task("mmlu:/x/y") == ("mmlu", "/x/y")
    assert suite.resolve("exams", None, world) == [("exams_en", world / "exams" / "en"),
                                                  ("exams_ko", world / "exams" / "ko")]
    assert suite.resolve("truthfulqa", None, world) == [("truthfulqa", world / "truthfulqa" / "mc_task.json")]
    with pytest.raises(UserError):
        suite.parse_task("nonsense")
    with pytest.raises(UserError):
        suite.resolve("mmlu", None, world)


def test_scripted_model_satisfies_protocol():
    assert isinstance(ScriptedLM({}), LanguageModel)


# ---- real public files through the shared readers ----------------------------------------------------------

@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_mmlu_and_truthfulqa_files():
    data = multiple_choice.load_mc_dir(SHARED / "mmlu")
    assert len(data) == 57 and sum(len(s["test"]) for s in data.values()) == 14042
    assert all(len(s["dev"]) == 5 for s in data.values())
    lm = ScriptedLM({})
    res = multiple_choice.evaluate(lm, SHARED / "mmlu", task="mmlu", shots=(0, 5), limit=1)
    assert res["summary"]["n"] == 57 and res["summary"]["subjects"] == 57
    assert set(res["summary"]["by_category"]) == {"STEM", "humanities", "social sciences", "other"}
    ctx = next(c for c, x in reversed(lm.requests) if x == " A")
    assert ctx.startswith("The following are multiple choice questions (with answers) about world religions.\n\n")
    assert ctx.count("\nAnswer:") == 6
    tqa = truthfulqa.evaluate(lm, SHARED / "truthfulqa" / "mc_task.json", limit=3)
    assert tqa["summary"]["n"] == 3
    assert len(truthfulqa.load_items(SHARED / "truthfulqa" / "mc_task.json")) == 817


# ---- endpoint backend against a tiny local server ------------------------------------------------------------

def _tokens(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in re.finditer(r"\s*\S+", text)]


def serve(logprobs: bool):
    """A tiny OpenAI-compatible server: chat answers from a fact table; /completions echoes prompt tokens
    (whitespace-separated) with log p = -0.1 per character when `logprobs`."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            if self.path == "/v1/chat/completions":
                question = text_of(body["messages"][-1]["content"])
                answer = "Lumen" if "Varo" in question else "unknown"
                reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                      "finish_reason": "stop"}]}
            elif self.path == "/v1/completions" and body.get("echo"):
                if not logprobs:
                    reply = {"choices": [{"index": 0, "text": body["prompt"] + " x"}]}
                else:
                    toks = _tokens(body["prompt"]) + [(len(body["prompt"]), " x")]
                    reply = {"choices": [{"index": 0, "text": body["prompt"] + " x", "logprobs": {
                        "tokens": [t for _, t in toks], "text_offset": [o for o, _ in toks],
                        "token_logprobs": [None] + [-0.1 * len(t) for _, t in toks[1:]]}}]}
            elif self.path == "/v1/completions":
                reply = {"choices": [{"index": 0, "text": " Lumen\nQ: next"}]}
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", seen


@pytest.fixture
def endpoint_server():
    server, url, seen = serve(logprobs=True)
    yield url, seen
    server.shutdown()
    server.server_close()


def test_endpoint_backend(endpoint_server, exam_dir):
    from tinygpt4.evals.endpoint import EndpointModel, base_url

    url, seen = endpoint_server
    assert base_url(url) == url + "/v1"
    assert base_url(url + "/v1/chat/completions") == url + "/v1"
    lm = EndpointModel(url, "tiny", api_key="k")
    assert isinstance(lm, LanguageModel)
    # " Lumen" is one token of 6 characters -> -0.6; the context's tokens are not counted
    assert lm.loglikelihood([("Q: capital?\nA:", " Lumen"), ("Q: x\nA:", " a b")]) == pytest.approx([-0.6, -0.4])
    assert lm.loglikelihood_rolling(["one two"]) == pytest.approx([-0.4])
    assert lm.generate([[{"role": "user", "content": "Capital of Varo?"}]]) == ["Lumen"]
    assert seen[-1]["auth"] == "Bearer k" and seen[-1]["body"]["model"] == "tiny"
    assert lm.complete(["Q: Capital of Varo?\nA:"], stop=["\n"]) == [" Lumen\nQ: next"]
    with pytest.raises(Unsupported):
        lm.loglikelihood([([{"role": "user", "content": "hi"}], "there")])
    res = multiple_choice.evaluate(lm, exam_dir, shots=(0,), limit=1)
    assert res["summary"]["n"] == 2 and not res["summary"].get("unsupported")


def test_endpoint_without_prompt_logprobs_marks_tasks_unsupported(tmp_path, exam_dir):
    from tinygpt4.evals.endpoint import EndpointModel

    server, url, _ = serve(logprobs=False)
    try:
        lm = EndpointModel(url + "/v1", "tiny")
        res = multiple_choice.evaluate(lm, exam_dir, shots=(0,))
        assert res["summary"]["unsupported"] is True and "logprobs" in res["summary"]["reason"]
        assert truthfulqa.evaluate(lm, write_tqa(tmp_path / "t.json"))["summary"]["unsupported"] is True
        fact = tmp_path / "f.jsonl"
        fact.write_text(json.dumps({"question": "Capital of Varo?", "answer": "Lumen", "category": "geo"}) + "\n")
        assert factuality.evaluate(lm, fact)["summary"]["exact_match"] == 1.0
    finally:
        server.shutdown()
        server.server_close()


def test_eval_command_against_endpoint(endpoint_server, tmp_path):
    import argparse

    from tinygpt4.evals import cli

    world = make_world(tmp_path / "world")
    url, _ = endpoint_server
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["eval", "--endpoint", url, "--model", "tiny", "--world", str(world),
                              "--task", "exams", "--task", f"factuality:{world / 'factuality' / 'factuality.jsonl'}",
                              "--out", str(out), "--shots", "0"])
    assert args.func(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["exams_en.json", "exams_ko.json", "factuality.json"]
    fact = json.loads((out / "factuality.json").read_text())
    assert fact["summary"]["exact_match"] == 1.0 and fact["config"]["prompt"] == "chat"
    with pytest.raises(UserError):
        bad = parser.parse_args(["eval", "--endpoint", url, "--task", "exams", "--out", str(out)])
        bad.func(bad)


# ---- local backend on a tiny random checkpoint ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_local():
    import torch

    from tinygpt4.config import ModelConfig
    from tinygpt4.evals.local import LocalModel
    from tinygpt4.model.gpt import GPT
    from tinygpt4.tokenizer import train_tokenizer_from_iterator

    corpus = ["The capital of Varo is Lumen. The river Amble runs through Orbis."] * 20 + ["A B C D Answer:"] * 5
    tok = train_tokenizer_from_iterator(corpus, vocab_size=300)
    cfg = ModelConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=32, n_head=2, n_kv_head=1, head_dim=16,
                      mlp_hidden=64, seq_len=48)
    torch.manual_seed(0)
    model = GPT.build(cfg, seed=0)
    return LocalModel(model=model, tokenizer=tok, batch_tokens=256)


def naive_loglikelihood(lm, context: str, continuation: str) -> float:
    import torch

    ctx = [lm.tok.bos_id, *lm.tok.encode(context)]
    cont = lm.tok.encode(continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(ids).float(), dim=-1)[0]
    return sum(logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))


def test_local_loglikelihood_matches_naive_scoring(tiny_local):
    lm = tiny_local
    q = "The capital of Varo is"
    requests = [(q, " Lumen"), (q, " Orbis the river"), (q, " A"), ("Answer:", " B"), (q, " Lumen"),
                ("The river", " Amble runs through Orbis.")]
    got = lm.loglikelihood(requests)
    want = [naive_loglikelihood(lm, c, x) for c, x in requests]
    assert got == pytest.approx(want, abs=1e-4)
    assert lm.loglikelihood([]) == []


def test_local_rolling_matches_naive_and_handles_long_text(tiny_local):
    lm = tiny_local
    text = "The river Amble runs through Orbis."
    assert lm.loglikelihood_rolling([text]) == pytest.approx([naive_loglikelihood(lm, "", text)], abs=1e-4)
    long = " ".join(["The capital of Varo is Lumen."] * 30)
    (ll,) = lm.loglikelihood_rolling([long])
    assert math.isfinite(ll) and ll < 0
    (ll_ctx,) = lm.loglikelihood([(long, " Lumen")])  # a context longer than the model's window
    assert math.isfinite(ll_ctx)


def test_local_multiple_choice_runs_batched(tiny_local, exam_dir):
    res = multiple_choice.evaluate(tiny_local, exam_dir, shots=(0, 1))
    s = res["summary"]
    assert s["n"] == 5 and 0 <= s["acc_cloze"] <= 1 and s["items_per_s"] > 0


def test_local_shared_prefix_packing_matches_naive(tiny_local):
    lm = tiny_local
    lm_small_rows = type(lm)(model=lm.model, tokenizer=lm.tok, batch_tokens=128, row_tokens=40, min_shared_prefix=4)
    shots = "The capital of Varo is Lumen.\n\nThe river Amble runs through Orbis.\n\n"
    requests = [(shots + q, c) for q in ("The capital of", "The river", "A B") for c in (" Varo", " Amble runs", " C")]
    requests.append((shots, "The capital"))  # a context that is the shared prefix itself
    want = [naive_loglikelihood(lm, c, x) for c, x in requests]
    assert lm_small_rows.loglikelihood(requests) == pytest.approx(want, abs=1e-4)
    assert lm.loglikelihood(requests) == pytest.approx(want, abs=1e-4)


def test_endpoint_backend_against_the_serving_api(tiny_local, tmp_path, exam_dir):
    """The real OpenAI-compatible server (tinygpt4.serve) on 127.0.0.1: generation tasks run through
    /v1/chat/completions; it has no prompt logprobs, so log-likelihood tasks come out unsupported."""
    import socket
    import time

    uvicorn = pytest.importorskip("uvicorn")
    from tinygpt4.engine import Engine
    from tinygpt4.evals.endpoint import EndpointModel
    from tinygpt4.serve.api import create_app

    app = create_app(Engine(tiny_local.model, tiny_local.tok))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        lm = EndpointModel(url, "tinygpt4")
        fact = tmp_path / "f.jsonl"
        fact.write_text("\n".join(json.dumps({"question": q, "answer": "Lumen", "category": c})
                                  for q, c in (("Capital of Varo?", "geo"), ("River of Orbis?", "geo"))))
        res = factuality.evaluate(lm, fact, max_tokens=4)
        assert res["summary"]["n"] == 2 and all(isinstance(it["output"], str) for it in res["items"])
        assert factuality.evaluate(lm, fact, chat=False)["summary"]["unsupported"] is True  # no /v1/completions
        mc = multiple_choice.evaluate(lm, exam_dir, shots=(0,), limit=1)
        assert mc["summary"]["unsupported"] is True
        make_png(tmp_path / "img" / "a.png")
        qa = tmp_path / "img" / "qa.jsonl"
        qa.write_text(json.dumps({"images": ["a.png"], "question": "Colour?", "answer": "red", "task": "colour"}))
        assert image_qa.evaluate(lm, qa)["summary"]["unsupported"] is True  # a text-only model refuses images
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_fewshot_prompts_shrink_by_whole_examples_to_fit_the_window(exam_dir):
    class ShortWindow(ScriptedLM):
        max_length = 50  # "tokens" are words here

        def count_tokens(self, texts):
            return [len(t.split()) for t in texts]

    lm = ShortWindow(facts_from(GEO))
    res = multiple_choice.evaluate(lm, exam_dir, shots=(2,), formulations=("letter",))
    letter_ctxs = [c for c, x in lm.requests if x == " A"]
    assert all(len(c.split()) + 1 <= 50 for c in letter_ctxs)
    assert all(c.startswith("The following are multiple choice questions") for c in letter_ctxs)
    geo = [it for it in res["items"] if it["subject"] == "high_school_geography"]
    assert all(it["shots_used"]["letter_2shot"] == 1 for it in geo)
    assert res["summary"]["prompts_with_fewer_shots"] >= 3


def test_local_backend_reports_its_window(tiny_local):
    assert tiny_local.max_length == 48
    assert tiny_local.count_tokens(["", "The capital"]) == [1, 1 + len(tiny_local.tok.encode("The capital"))]
