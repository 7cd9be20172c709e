"""Multiple choice in MMLU layout, in the two formulations evaluation standards use (as OLMES does).

letter (MC): lm-evaluation-harness's `mmlu` template. The context is the subject header, the first k dev
  questions with their answer letters, then the test question; the continuations " A" .. " D" are scored
  and the most likely letter is the prediction.

      The following are multiple choice questions (with answers) about high school geography.

      <question>
      A. <option>
      B. <option>
      C. <option>
      D. <option>
      Answer: B

      <question>
      ...
      Answer:

cloze (RC): each option's own text after "<question>\\nAnswer:", scored by its log-likelihood divided by
  its length in characters (lm-eval's acc_norm). Small models that know a fact usually answer it in this
  form long before they learn to map options to letters, so both are reported.
"""

from __future__ import annotations

from pathlib import Path

from tinygpt4.data.readers import read_mmlu_dir
from tinygpt4.errors import UserError
from tinygpt4.evals.common import argmax, group_by, result, rounded, timed, unsupported
from tinygpt4.evals.protocol import LanguageModel, Unsupported

LETTERS = "ABCDEFGHIJ"
FORMULATIONS = ("letter", "cloze")

# MMLU subject -> category, as in the benchmark's release (hendrycks/test categories.py).
_SUBCATEGORY = {
    "abstract_algebra": "math", "anatomy": "health", "astronomy": "physics", "business_ethics": "business",
    "clinical_knowledge": "health", "college_biology": "biology", "college_chemistry": "chemistry",
    "college_computer_science": "computer science", "college_mathematics": "math", "college_medicine": "health",
    "college_physics": "physics", "computer_security": "computer science", "conceptual_physics": "physics",
    "econometrics": "economics", "electrical_engineering": "engineering", "elementary_mathematics": "math",
    "formal_logic": "philosophy", "global_facts": "other", "high_school_biology": "biology",
    "high_school_chemistry": "chemistry", "high_school_computer_science": "computer science",
    "high_school_european_history": "history", "high_school_geography": "geography",
    "high_school_government_and_politics": "politics", "high_school_macroeconomics": "economics",
    "high_school_mathematics": "math", "high_school_microeconomics": "economics", "high_school_physics": "physics",
    "high_school_psychology": "psychology", "high_school_statistics": "math", "high_school_us_history": "history",
    "high_school_world_history": "history", "human_aging": "health", "human_sexuality": "culture",
    "international_law": "law", "jurisprudence": "law", "logical_fallacies": "philosophy",
    "machine_learning": "computer science", "management": "business", "marketing": "business",
    "medical_genetics": "health", "miscellaneous": "other", "moral_disputes": "philosophy",
    "moral_scenarios": "philosophy", "nutrition": "health", "philosophy": "philosophy", "prehistory": "history",
    "professional_accounting": "other", "professional_law": "law", "professional_medicine": "health",
    "professional_psychology": "psychology", "public_relations": "politics", "security_studies": "politics",
    "sociology": "culture", "us_foreign_policy": "politics", "virology": "health", "world_religions": "philosophy",
}
_CATEGORY_OF_SUB = {
    "physics": "STEM", "chemistry": "STEM", "biology": "STEM", "computer science": "STEM", "math": "STEM",
    "engineering": "STEM", "history": "humanities", "philosophy": "humanities", "law": "humanities",
    "politics": "social sciences", "culture": "social sciences", "economics": "social sciences",
    "geography": "social sciences", "psychology": "social sciences", "other": "other", "business": "other",
    "health": "other",
}
# Subjects outside MMLU (e.g. the built-in world's exams) are placed by a word in their name.
_KEYWORDS = [
    (("math", "arith", "algebra", "physic", "chem", "bio", "species", "compound", "science", "engineer"), "STEM"),
    (("history", "law", "philosoph", "people", "literature", "religion"), "humanities"),
    (("geograph", "countr", "city", "cities", "econom", "politic", "psycholog", "culture", "societ"), "social sciences"),
]


def category_of(subject: str) -> str:
    if subject in _SUBCATEGORY:
        return _CATEGORY_OF_SUB[_SUBCATEGORY[subject]]
    low = subject.lower()
    for words, cat in _KEYWORDS:
        if any(w in low for w in words):
            return cat
    return "other"


def load_mc_dir(root: str | Path) -> dict[str, dict[str, list[dict]]]:
    """{subject: {"dev": [...], "test": [...]}} with items {"question", "choices", "answer": index}."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory (expected MMLU layout: dev/ and test/ of <subject>_<split>.csv)")
    data = read_mmlu_dir(root)
    out: dict[str, dict[str, list[dict]]] = {}
    for split, subjects in data.items():
        for subject, rows in subjects.items():
            out.setdefault(subject, {})[split] = [
                {"question": r.question, "choices": list(r.choices), "answer": r.answer_index} for r in rows
            ]
    if not any(s.get("test") for s in out.values()):
        raise UserError(f"{root}: no test questions found (expected test/<subject>_test.csv)")
    return out


def subject_name(subject: str) -> str:
    return subject.replace("_", " ")


def letter_prompt(item: dict) -> str:
    lines = [item["question"].strip()]
    lines += [f"{LETTERS[i]}. {c}" for i, c in enumerate(item["choices"])]
    return "\n".join(lines) + "\nAnswer:"


def letter_context(subject: str, item: dict, shots: list[dict]) -> str:
    head = f"The following are multiple choice questions (with answers) about {subject_name(subject)}.\n\n"
    fewshot = "".join(f"{letter_prompt(s)} {LETTERS[s['answer']]}\n\n" for s in shots)
    return head + fewshot + letter_prompt(item)


def cloze_prompt(item: dict) -> str:
    return f"{item['question'].strip()}\nAnswer:"


def cloze_context(item: dict, shots: list[dict]) -> str:
    fewshot = "".join(f"{cloze_prompt(s)} {s['choices'][s['answer']]}\n\n" for s in shots)
    return fewshot + cloze_prompt(item)


def requests_for(subject: str, item: dict, shots: list[dict], formulation: str) -> list[tuple[str, str]]:
    if formulation == "letter":
        ctx = letter_context(subject, item, shots)
        return [(ctx, f" {LETTERS[i]}") for i in range(len(item["choices"]))]
    if formulation == "cloze":
        ctx = cloze_context(item, shots)
        return [(ctx, f" {c}") for c in item["choices"]]
    raise ValueError(f"unknown formulation {formulation!r}")


def prediction(item: dict, lls: list[float], formulation: str) -> int:
    if formulation == "cloze":  # acc_norm: per character of the option's own text
        return argmax([ll / max(1, len(c)) for ll, c in zip(lls, item["choices"])])
    return argmax(lls)


def _shots_that_fit(lm: LanguageModel, data: dict, items: list[dict], cells: list[tuple]) -> list[int]:
    """How many few-shot examples each prompt keeps. A backend that says how long its window is
    (max_length, count_tokens) gets prompts that fit it: the earliest examples are dropped whole, so the
    subject header and the question are never cut, instead of the backend cutting the text at the left."""
    wanted = [min(k, len(data[subject].get("dev", []))) for _, subject, _, k in cells]
    max_length = getattr(lm, "max_length", None)
    count = getattr(lm, "count_tokens", None)
    if not max_length or count is None:
        return wanted
    used = list(wanted)
    todo = [i for i, k in enumerate(used) if k > 0]
    while todo:
        texts = []
        for i in todo:
            idx, subject, form, k = cells[i]
            reqs = requests_for(subject, items[idx], data[subject]["dev"][k - used[i]:k], form)
            texts.append(reqs[0][0] + max((c for _, c in reqs), key=len))
        over = [i for i, n in zip(todo, count(texts)) if n > max_length]
        for i in over:
            used[i] -= 1
        todo = [i for i in over if used[i] > 0]
    return used


def setting_name(formulation: str, k: int) -> str:
    return f"{formulation}_{k}shot"


def evaluate(
    lm: LanguageModel,
    root: str | Path,
    *,
    task: str = "mmlu",
    shots: tuple[int, ...] = (0, 5),
    formulations: tuple[str, ...] = FORMULATIONS,
    limit: int | None = None,
) -> dict:
    """Score every test question of an MMLU-layout folder in each formulation and shot count.

    All requests go to the backend in one call, so it can batch and share contexts freely.
    `limit` keeps the first N test questions of each subject (for quick runs)."""
    data = load_mc_dir(root)
    items, requests, spans = _requests(lm, data, shots, formulations, limit)
    config = {
        "path": str(root), "shots": list(shots), "formulations": list(formulations), "limit": limit,
        "fewshot_split": "dev", "fewshot_sampler": "first_n", "model": getattr(lm, "name", None),
        "templates": {
            "letter": "lm-evaluation-harness mmlu: subject header, '<question>\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\n"
                      "Answer:' + ' A'..' D', few-shot separated by blank lines; acc = argmax log-likelihood",
            "cloze": "'<question>\\nAnswer:' + ' <option text>', few-shot separated by blank lines; "
                     "acc_norm = argmax log-likelihood / len(option text)",
        },
    }
    try:
        lls, wall = timed(lm.loglikelihood, requests)
    except Unsupported as e:
        return unsupported(task, config, str(e))
    for idx, setting, a, b in spans:
        item = items[idx]
        scores = lls[a:b]
        pred = prediction(item, scores, setting.split("_")[0])
        item.setdefault("ll", {})[setting] = rounded(scores)
        item.setdefault("pred", {})[setting] = pred
        item.setdefault("correct", {})[setting] = pred == item["answer"]
    settings = [setting_name(f, k) for k in shots for f in formulations]
    summary = _summarise(items, settings, formulations, max(shots))
    cut = [n for it in items for n in it.get("shots_used", {}).values()]
    summary.update(
        prompts_with_fewer_shots=len(cut),
        n=len(items),
        subjects=len({it["subject"] for it in items}),
        chance=sum(1 / len(it["choices"]) for it in items) / max(1, len(items)),
        requests=len(requests),
        wall_s=wall,
        items_per_s=len(items) / wall if wall > 0 else None,
    )
    return result(task, config, rounded(summary), items)


def _requests(lm: LanguageModel, data: dict, shots: tuple[int, ...], formulations: tuple[str, ...],
              limit: int | None) -> tuple[list[dict], list[tuple[str, str]], list[tuple[int, str, int, int]]]:
    """The test items (the first `limit` of each subject), every request in one list, and each (item index,
    setting)'s span (start, end) in it. An item whose prompt had to drop few-shot examples to fit the
    backend's window records how many it kept, per setting, in "shots_used"."""
    items: list[dict] = []
    requests: list[tuple[str, str]] = []
    spans: list[tuple[int, str, int, int]] = []  # (item index, setting, start, end) into requests
    cells: list[tuple[int, str, str, int]] = []  # (item index, subject, formulation, shots wanted)
    for subject in sorted(data):
        for item in data[subject].get("test", [])[:limit]:
            items.append({"subject": subject, "category": category_of(subject), **item})
            cells += [(len(items) - 1, subject, form, k) for k in shots for form in formulations]
    used = _shots_that_fit(lm, data, items, cells)
    for (idx, subject, form, k), k_used in zip(cells, used):
        dev = data[subject].get("dev", [])
        reqs = requests_for(subject, items[idx], dev[k - k_used:k], form)
        spans.append((idx, setting_name(form, k), len(requests), len(requests) + len(reqs)))
        requests.extend(reqs)
        if k_used < min(k, len(dev)):
            items[idx].setdefault("shots_used", {})[setting_name(form, k)] = k_used
    return items, requests, spans


def _summarise(items: list[dict], settings: list[str], formulations: tuple[str, ...], k_max: int) -> dict:
    def acc(sub: list[dict]) -> dict:
        return {f"acc_{s}": sum(it["correct"][s] for it in sub) / len(sub) for s in settings} | {"n": len(sub)}

    summary = acc(items) if items else {}
    for form in formulations:  # the headline numbers: the largest shot count
        key = f"acc_{setting_name(form, k_max)}"
        if key in summary:
            summary[f"acc_{form}"] = summary[key]
    summary["headline_shots"] = k_max
    for group in ("category", "subject"):
        summary[f"by_{group}"] = {g: acc(v) for g, v in group_by(items, group).items()}
    return summary
