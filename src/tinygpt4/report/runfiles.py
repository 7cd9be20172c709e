"""Reading a run folder for the report: run.json, each checkpoint stage's summary.json and log.jsonl, and
the eval results under evals/<stage>/. Missing or unreadable files read as absent, never as errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.data.readers import read_jsonl
from tinygpt4.errors import UserError

CHECKPOINT_ORDER = ["base", "sft", "rm", "rl"]
NOT_STAGES = {"world", "tokenizer", "scaling", "evals", "report", ".cache"}
STAGE_LABELS = {"base": "base (pre-trained)", "sft": "SFT", "rm": "reward model", "rl": "RL"}


def read_json(path: Path):
    """The parsed file, or None when it is missing or unreadable (a run stopped while writing it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: bad JSON or bad UTF-8
        return None


def read_log(path: Path) -> list[dict]:
    """A training log's records; none when the file is missing. A line cut short by an interrupted run
    is skipped."""
    try:
        return read_jsonl(path, skip_bad=True)
    except UserError:  # missing or unreadable
        return []


def stage_order(names) -> list[str]:
    names = list(names)
    known = [s for s in CHECKPOINT_ORDER if s in names]
    return known + sorted(n for n in names if n not in CHECKPOINT_ORDER)


def stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage)


@dataclass
class Run:
    root: Path
    state: dict
    stages: list[str]                      # checkpoint folders, in pipeline order
    summaries: dict[str, dict]
    logs: dict[str, list[dict]]
    evals: dict[str, dict[str, dict]]      # stage -> task -> result
    eval_stages: list[str] = field(default_factory=list)

    def task(self, stage: str, task: str) -> dict | None:
        res = self.evals.get(stage, {}).get(task)
        if res is None or res.get("summary", {}).get("unsupported"):
            return None
        return res

    def stages_with(self, task: str) -> list[str]:
        return [s for s in self.eval_stages if self.task(s, task)]

    def tasks(self, prefix: str) -> list[str]:
        """The tasks named `prefix` or `prefix_<something>` that any stage has results for, sorted."""
        names = {t for s in self.eval_stages for t in self.evals[s]
                 if t == prefix or t.startswith(prefix + "_")}
        return sorted(names)

    def post_stage(self, task: str) -> str | None:
        """The most post-trained stage with results for a task (the last one that is not base)."""
        stages = [s for s in self.stages_with(task) if s != "base"]
        return stages[-1] if stages else None


def _read_stages(root: Path) -> tuple[list[str], dict[str, dict], dict[str, list[dict]]]:
    stages, summaries, logs = [], {}, {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_STAGES):
        if not ((d / "summary.json").exists() or (d / "log.jsonl").exists() or (d / "config.json").exists()):
            continue
        stages.append(d.name)
        summaries[d.name] = read_json(d / "summary.json") or {}
        logs[d.name] = read_log(d / "log.jsonl")
    return stages, summaries, logs


def _read_evals(root: Path) -> dict[str, dict[str, dict]]:
    evals: dict[str, dict[str, dict]] = {}
    if not (root / "evals").is_dir():
        return evals
    for d in sorted(p for p in (root / "evals").iterdir() if p.is_dir()):
        results = {}
        for f in sorted(d.glob("*.json")):
            res = read_json(f)
            if isinstance(res, dict) and isinstance(res.get("summary"), dict):
                results[res.get("task") or f.stem] = res
        if results:
            evals[d.name] = results
    return evals


def load_run(run_dir: str | Path) -> Run:
    root = Path(run_dir)
    if not root.is_dir():
        raise UserError(f"run folder not found: {root}")
    state = read_json(root / "run.json") or {}
    stages, summaries, logs = _read_stages(root)
    evals = _read_evals(root)
    if not stages and not evals and not state:
        raise UserError(f"{root}: nothing to report (no run.json, checkpoint folders or evals/)")
    return Run(root, state, stage_order(stages), summaries, logs, evals, stage_order(evals))
