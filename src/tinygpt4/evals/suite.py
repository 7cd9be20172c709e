"""Task names, where their data lives by default, and the `report` suite.

A task is named NAME or NAME:PATH. The family is the name's prefix (exams_ko is an exams task, mmlu_real
an mmlu task), the result is written to <out>/<NAME>.json, and a missing PATH means the family's file in
the world folder:

    exams_<lang>   multiple choice, both formulations, 0- and 5-shot   world/exams/<lang>/
    exams          every language folder under world/exams/, as exams_<lang>
    mmlu           multiple choice on any MMLU-layout folder            (PATH required)
    calibration    ECE / Brier / reliability of multiple choice         world/exams/en/
    truthfulqa     MC1 / MC2, 0-shot, 5-shot (+ chat for chat models)   world/truthfulqa/mc_task.json
    factuality     generation, exact match by category; after a picture world/factuality/factuality.jsonl
    image_qa       per task, alone and after a picture; blind, majority world/image_qa/image_qa.jsonl
    followup       with vs without the earlier turns                    world/followup/followup.jsonl
    bpb            held-out bits per byte                               world/heldout/heldout.jsonl
    safety         disallowed / sensitive / look-alike prompts, graded  world/safety/prompts.jsonl
    xstest         XSTest over-refusal, string match and grader         (PATH required: the XSTest CSV or its folder)
    toxicity       RealToxicityPrompts: k nucleus samples per prompt    world/toxicity/prompts.jsonl
                   (toxicity_rtp:PATH and other toxicity_<name> need a PATH: an RTP JSONL or a folder of them)

The safety families are graded by a safety grader (`safety/graders.py`): a Grader object or a spec
("regex", "judge:URL", a trained classifier folder); `run_suite` defaults to <model_dir>/../grader when that
folder exists, else "regex", and loads it once, only when a task needs it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.evals import (
    bpb,
    calibration,
    factuality,
    followup,
    image_qa,
    multiple_choice,
    safety,
    toxicity,
    truthfulqa,
    xstest,
)
from tinygpt4.evals.common import write_result
from tinygpt4.evals.local import LocalModel
from tinygpt4.evals.protocol import LanguageModel
from tinygpt4.safety.graders import load_grader

FAMILIES = ("exams", "mmlu", "calibration", "truthfulqa", "factuality", "image_qa", "followup", "bpb", "safety",
            "xstest", "toxicity")
GRADED = ("safety", "xstest", "toxicity")  # the families that need a safety grader
PATH_REQUIRED = ("mmlu", "xstest")
DEFAULT_PATHS = {
    "calibration": "exams/en",
    "truthfulqa": "truthfulqa/mc_task.json",
    "factuality": "factuality/factuality.jsonl",
    "image_qa": "image_qa/image_qa.jsonl",
    "followup": "followup/followup.jsonl",
    "bpb": "heldout/heldout.jsonl",
    "safety": "safety/prompts.jsonl",
    "toxicity": "toxicity/prompts.jsonl",
}
# What a summary line shows for each family.
HEADLINES = {
    "exams": ("acc_cloze", "acc_letter"), "mmlu": ("acc_cloze", "acc_letter"),
    "calibration": ("ece_width_letter", "ece_width_cloze"), "truthfulqa": ("mc1_0shot", "mc1_5shot", "mc1_chat"),
    "factuality": ("contains", "contains_after_picture"), "image_qa": ("acc", "acc_after_turn", "acc_blind"),
    "followup": ("acc_with_context", "acc_standalone"), "bpb": ("bpb",),
    "safety": ("incorrect_rate_disallowed", "incorrect_rate_sensitive", "overrefusal_rate"),
    "xstest": ("overrefusal_strmatch", "overrefusal_grader", "refusal_unsafe_grader", "agreement"),
    "toxicity": ("expected_max_toxicity", "toxicity_probability", "toxic_share"),
}


def family_of(name: str) -> str:
    for fam in sorted(FAMILIES, key=len, reverse=True):
        if name == fam or name.startswith(fam + "_"):
            return fam
    raise UserError(f"unknown task {name!r} (families: {', '.join(FAMILIES)}; e.g. exams_en, mmlu:PATH)")


def parse_task(spec: str) -> tuple[str, str | None]:
    name, sep, path = spec.partition(":")
    if not name:
        raise UserError(f"bad task {spec!r} (expected NAME or NAME:PATH)")
    family_of(name)
    return name, (path if sep else None)


def exam_languages(world_dir: str | Path | None) -> list[str]:
    root = Path(world_dir) / "exams" if world_dir else None
    if root is None or not root.is_dir():
        return []
    langs = sorted(p.name for p in root.iterdir() if (p / "test").is_dir())
    return sorted(langs, key=lambda lang: lang != "en")  # English first


def resolve(name: str, path: str | None, world_dir: str | Path | None) -> list[tuple[str, Path]]:
    """(task name, data path) pairs for one task spec; `exams` expands to one task per language."""
    fam = family_of(name)
    if path is not None:
        return [(name, Path(path))]
    if fam in PATH_REQUIRED or (fam in GRADED and name != fam):
        what = {"mmlu": "an MMLU-layout folder", "xstest": "the XSTest CSV or its folder",
                "toxicity": "a RealToxicityPrompts JSONL or a folder of them"}.get(fam, "a data file")
        raise UserError(f"task {name} needs a path: {name}:PATH ({what})")
    if world_dir is None:
        raise UserError(f"task {name} has no path and no world folder is known (use {name}:PATH or --world DIR)")
    world = Path(world_dir)
    if name == "exams":
        langs = exam_languages(world)
        if not langs:
            raise UserError(f"{world / 'exams'}: no exam folders (expected exams/<lang>/test/)")
        return [(f"exams_{lang}", world / "exams" / lang) for lang in langs]
    if fam == "exams":
        return [(name, world / "exams" / name.split("_", 1)[1])]
    return [(name, world / DEFAULT_PATHS[fam])]


def _prefaces(lm: LanguageModel, path: str | Path, chat: bool) -> list[list[dict]] | None:
    """Picture turns from the world's image QA file beside the factuality folder, for a chat model that
    takes images (factuality then also scores each question asked after a picture)."""
    pictures = Path(path).resolve().parent.parent / DEFAULT_PATHS["image_qa"]
    if chat and getattr(lm, "supports_images", False) and pictures.is_file():
        return image_qa.picture_turns(pictures)
    return None


def resolve_grader(grader):
    """A Grader for a Grader object or a spec string (None: "regex")."""
    if grader is None or isinstance(grader, str | Path):
        return load_grader(str(grader or "regex"))
    return grader


def default_grader(model_dir: str | Path | None) -> str:
    """The run's trained grader (<model_dir>/../grader) when there is one, else the policy's regex grader."""
    if model_dir is not None:
        folder = Path(model_dir).resolve().parent / "grader"
        if folder.is_dir():
            return str(folder)
    return "regex"


def _safety_task(lm: LanguageModel, fam: str, name: str, path: str | Path, chat: bool, limit: int | None,
                 opts: dict) -> dict:
    grader = resolve_grader(opts.get("grader"))
    if fam == "safety":
        return safety.evaluate(lm, path, grader, task=name, chat=chat, limit=limit)
    if fam == "xstest":
        return xstest.evaluate(lm, path, grader, task=name, chat=chat, limit=limit)
    sampling = toxicity.Sampling(k=opts["samples"]) if opts.get("samples") else None
    return toxicity.evaluate(lm, path, grader, task=name, chat=chat, limit=limit, sampling=sampling,
                             scorers=opts.get("scorers") or toxicity.DEFAULT_SCORERS)


def run_task(
    lm: LanguageModel,
    name: str,
    path: str | Path,
    *,
    chat: bool = False,
    limit: int | None = None,
    shots: tuple[int, ...] = (0, 5),
    grader=None,
    scorers: tuple[str, ...] | None = None,
    samples: int | None = None,
) -> dict:
    """Run one task and return its result (task, config, summary, items). `grader` (a Grader or a spec) grades
    the safety families; `scorers` and `samples` (k) are the toxicity task's."""
    fam = family_of(name)
    if not Path(path).exists():
        raise UserError(f"task {name}: data not found: {path}")
    if fam in ("exams", "mmlu"):
        return multiple_choice.evaluate(lm, path, task=name, shots=shots, limit=limit)
    if fam == "calibration":
        return calibration.evaluate(lm, path, task=name, shots=max(shots), limit=limit)
    if fam == "truthfulqa":
        formats = ("0shot", "5shot", "chat") if chat else ("0shot", "5shot")
        return truthfulqa.evaluate(lm, path, task=name, formats=formats, limit=limit)
    if fam == "factuality":
        return factuality.evaluate(lm, path, task=name, chat=chat, limit=limit, prefaces=_prefaces(lm, path, chat))
    if fam == "image_qa":
        return image_qa.evaluate(lm, path, task=name, limit=limit)
    if fam == "followup":
        return followup.evaluate(lm, path, task=name, limit=limit)
    if fam in GRADED:
        opts = {"grader": grader, "scorers": scorers, "samples": samples}
        return _safety_task(lm, fam, name, path, chat, limit, opts)
    return bpb.evaluate(lm, path, task=name, limit=limit)


def headline(res: dict) -> str:
    s = res["summary"]
    if s.get("unsupported"):
        return f"unsupported ({s.get('reason')})"
    parts = [f"{k}={s[k]:.3f}" for k in HEADLINES[family_of(res["task"])] if isinstance(s.get(k), int | float)]
    if "n" in s:
        parts.append(f"n={s['n']}")
    return " ".join(parts)


def _log(stage: str, msg: str) -> None:
    print(f"[eval {stage}] {msg}", file=sys.stderr, flush=True)


def run_tasks(
    lm: LanguageModel,
    tasks: list[tuple[str, Path]],
    out_dir: str | Path,
    *,
    stage: str = "",
    chat: bool = False,
    limit: int | None = None,
    shots: tuple[int, ...] = (0, 5),
    log: Callable[[str, str], None] | None = _log,
    grader=None,
    scorers: tuple[str, ...] | None = None,
    samples: int | None = None,
) -> dict[str, dict]:
    """Run tasks in order, writing each result as soon as it is done. A calibration task whose data is an
    exams task already run here is derived from that result instead of being scored again. The grader is
    loaded once, before the first task that needs it."""
    summaries: dict[str, dict] = {}
    done: dict[Path, dict] = {}
    for name, path in tasks:
        t0 = time.perf_counter()
        fam = family_of(name)
        source = done.get(Path(path).resolve()) if fam == "calibration" else None
        if fam in GRADED:
            grader = resolve_grader(grader)
        if source is not None and not source["summary"].get("unsupported"):
            res = calibration.from_multiple_choice(source, task=name)
        else:
            res = run_task(lm, name, path, chat=chat, limit=limit, shots=shots, grader=grader, scorers=scorers,
                           samples=samples)
        if fam in ("exams", "mmlu"):
            done[Path(path).resolve()] = res
        write_result(out_dir, res)
        summaries[name] = res["summary"]
        if log:
            log(stage, f"{name}: {headline(res)} ({time.perf_counter() - t0:.1f}s)")
    return summaries


def report_tasks(world_dir: str | Path, *, chat: bool, images: bool) -> list[tuple[str, Path]]:
    """The `report` suite: everything the technical report draws, for the data the world folder has."""
    world = Path(world_dir)
    if not world.is_dir():
        raise UserError(f"world folder not found: {world}")
    langs = exam_languages(world)
    tasks = [(f"exams_{lang}", world / "exams" / lang) for lang in langs]
    if langs:
        tasks.append(("calibration", world / "exams" / ("en" if "en" in langs else langs[0])))
    for fam in ("truthfulqa", "factuality", "image_qa", "followup", "bpb", "safety", "toxicity"):
        if fam == "image_qa" and not images:
            continue
        if fam in ("followup", "safety") and not chat:
            continue
        path = world / DEFAULT_PATHS[fam]
        if path.exists():
            tasks.append((fam, path))
    return tasks


def run_suite(
    model: str | Path | LanguageModel,
    world_dir: str | Path,
    out_dir: str | Path,
    stage: str,
    *,
    chat: bool | None = None,
    limit: int | None = None,
    shots: tuple[int, ...] = (0, 5),
    device: str = "cpu",
    log: Callable[[str, str], None] | None = _log,
    grader=None,
    extra_tasks: list[tuple[str, Path]] = (),
    samples: int | None = None,
) -> dict[str, dict]:
    """Run the report suite on a checkpoint folder (or any LanguageModel) and write out_dir/<task>.json.

    `chat` (default: every stage except "base") selects the chat-template prompts for generation and the
    extra TruthfulQA chat format; `shots` are the few-shot counts of the exams (the largest is the headline
    and the one calibration uses); `limit` caps the items per task (per subject for exams). `grader` (a
    Grader or a spec; default: `default_grader(model)`) grades the safety tasks; `extra_tasks` run after the
    suite's own (e.g. ("xstest", XSTest folder), ("toxicity_rtp", RTP folder)); `samples` is the toxicity k.
    Returns {task: summary}."""
    if chat is None:
        chat = stage != "base"
    if grader is None:
        grader = default_grader(None if isinstance(model, LanguageModel) else model)
    lm = model if isinstance(model, LanguageModel) else load_backend(model, device=device)
    tasks = report_tasks(world_dir, chat=chat, images=bool(getattr(lm, "supports_images", False)))
    return run_tasks(lm, [*tasks, *extra_tasks], out_dir, stage=stage, chat=chat, limit=limit, shots=shots,
                     log=log, grader=grader, samples=samples)


def load_backend(model_dir: str | Path, device: str = "cpu") -> LanguageModel:
    return LocalModel(model_dir, device=device)
