"""The technical report of a run: RUN_DIR/report/report.md and index.html, with PNG figures beside them.

Everything comes from the run's files (run.json, <stage>/summary.json and log.jsonl, evals/<stage>/*.json,
scaling/*.json), never from logs on a terminal. A section whose files are missing is left out, so the
report of a half-finished run is a shorter report, not an error. The document is built once as a list of
blocks and rendered twice; every string that came from a model or a dataset is escaped in both renderings.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.evals.common import resolve_path, search_roots
from tinygpt4.report import figures

CHECKPOINT_ORDER = ["base", "sft", "rm", "rl"]
NOT_STAGES = {"world", "tokenizer", "scaling", "evals", "report", ".cache"}
STAGE_LABELS = {"base": "base (pre-trained)", "sft": "SFT", "rm": "reward model", "rl": "RL"}
LANG_NAMES = {"en": "English", "ko": "Korean", "es": "Spanish", "ja": "Japanese"}
OPTIMIZER_NAMES = {"adamw": "AdamW", "muon": "Muon + AdamW"}


# ---- reading the run -------------------------------------------------------------------------------------

def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
        if isinstance(obj, dict):
            out.append(obj)
    return out


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
        names = {t for s in self.eval_stages for t in self.evals[s] if t == prefix or t.startswith(prefix + "_")}
        return sorted(names)


def load_run(run_dir: str | Path) -> Run:
    root = Path(run_dir)
    if not root.is_dir():
        raise UserError(f"run folder not found: {root}")
    state = _read_json(root / "run.json") or {}
    stages, summaries, logs = [], {}, {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_STAGES):
        if not ((d / "summary.json").exists() or (d / "log.jsonl").exists() or (d / "config.json").exists()):
            continue
        stages.append(d.name)
        summaries[d.name] = _read_json(d / "summary.json") or {}
        logs[d.name] = _read_jsonl(d / "log.jsonl")
    evals: dict[str, dict[str, dict]] = {}
    if (root / "evals").is_dir():
        for d in sorted(p for p in (root / "evals").iterdir() if p.is_dir()):
            results = {}
            for f in sorted(d.glob("*.json")):
                res = _read_json(f)
                if isinstance(res, dict) and isinstance(res.get("summary"), dict):
                    results[res.get("task") or f.stem] = res
            if results:
                evals[d.name] = results
    if not stages and not evals and not state:
        raise UserError(f"{root}: nothing to report (no run.json, checkpoint folders or evals/)")
    return Run(root, state, stage_order(stages), summaries, logs, evals, stage_order(evals))


# ---- the document ----------------------------------------------------------------------------------------

@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str  # written by this module: plain text, escaped on output


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    file: str  # a PNG beside the report
    caption: str


@dataclass
class Transcript:
    title: str
    turns: list[tuple[str, str, list[str]]]  # (speaker, text, image files beside the report)
    note: str = ""


Block = Heading | Para | Table | Figure | Transcript


def pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, int | float) else "–"


def num(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, int | float) else "–"


def si(x) -> str:
    if not isinstance(x, int | float):
        return "–"
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def flops(x) -> str:
    return f"{x:.2e}" if isinstance(x, int | float) and x else "–"


def duration(s) -> str:
    if not isinstance(s, int | float):
        return "–"
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


class ReportBuilder:
    def __init__(self, run: Run, out_dir: Path):
        self.run = run
        self.out = out_dir
        self.blocks: list[Block] = []
        self.figures: list[str] = []
        self.n_images = 0

    # -- helpers ---------------------------------------------------------------------------------------
    def h(self, level: int, text: str) -> None:
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.blocks.append(Heading(level, text, anchor))

    def p(self, text: str) -> None:
        self.blocks.append(Para(text))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if rows:
            self.blocks.append(Table(headers, rows))

    def figure(self, fn, name: str, caption: str, *args, **kwargs) -> None:
        """Draw a figure; a figure that fails to draw is left out rather than failing the report."""
        try:
            fn(*args, out=self.out / name, **kwargs)
        except (ValueError, KeyError, TypeError, IndexError):
            return
        self.figures.append(name)
        self.blocks.append(Figure(name, caption))

    def copy_image(self, src: Path | None) -> str | None:
        """Copy a dataset image beside the report (images/NNN_<name>) and return its relative path."""
        if src is None or not src.is_file():
            return None
        self.n_images += 1
        dest = self.out / "images" / f"{self.n_images:03d}_{src.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return f"images/{dest.name}"

    def post_stage(self, task: str) -> str | None:
        """The most post-trained stage with results for a task (the last one that is not base)."""
        stages = [s for s in self.run.stages_with(task) if s != "base"]
        return stages[-1] if stages else None

    # -- sections --------------------------------------------------------------------------------------
    def build(self) -> list[Block]:
        run = self.run
        name = run.root.resolve().name
        self.h(1, f"tinygpt4 technical report: {name}")
        bits = [f"preset {run.state['preset']}" if run.state.get("preset") else "",
                f"seed {run.state['seed']}" if "seed" in run.state else ""]
        self.p("This report was written by the run itself from the files in its folder. "
               + (f"Run settings: {', '.join(b for b in bits if b)}." if any(bits) else ""))
        for section in (self.model_card, self.training, self.exams, self.mmlu, self.truthfulqa, self.factuality,
                        self.calibration, self.bpb, self.followup, self.image_qa, self.transcripts, self.scaling,
                        self.safety):
            section()
        return self.blocks

    def model_card(self) -> None:
        run = self.run
        rows = []
        for s in run.stages:
            m = run.summaries.get(s) or {}
            if not m:
                continue
            rows.append([stage_label(s), si(m.get("params")), si(m.get("tokens")), flops(m.get("flops")),
                         duration(m.get("wall_s")), num(m.get("final_val_loss")), num(m.get("final_val_bpb")),
                         OPTIMIZER_NAMES.get(m.get("optimizer"), "–"), str(m.get("device", "–"))])
        stages = (run.state.get("stages") or {}) if isinstance(run.state.get("stages"), dict) else {}
        if not rows and not stages:
            return
        self.h(2, "Model card")
        if rows:
            self.p("Parameters are counted with the output head (and the vision tower where there is one); "
                   "training FLOPs are 6N per token plus attention, as in the Chinchilla and PaLM papers.")
            self.table(["stage", "parameters", "tokens", "training FLOPs", "wall time", "final val loss",
                        "val bits/byte", "optimizer", "device"], rows)
            tower = (run.summaries.get("sft") or {}).get("tower_pretrain")
            if isinstance(tower, dict) and tower.get("steps"):
                pairs = tower.get("pairs_min_count") or 0
                what = (f"each caption's words and the pairs of adjacent words that {pairs} or more captions "
                        "share" if pairs else "each caption's words")
                frozen = " SFT then kept it frozen." if run.summaries["sft"].get("tower_frozen") else ""
                self.p(f"Before SFT the fresh vision tower trained alone for {tower['steps']} steps "
                       f"({si(tower.get('images'))} images from {si(tower.get('captions'))} captions, "
                       f"{duration(tower.get('wall_s'))}), predicting from the picture {what} "
                       f"(loss {num(tower.get('first_loss'))} to {num(tower.get('final_loss'))}).{frozen}")
        if stages:
            srows = [[name, duration(info.get("wall_s")), str(info.get("status", ""))]
                     for name, info in stages.items() if isinstance(info, dict)]
            total = run.state.get("total_wall_s") or sum(info.get("wall_s", 0) for info in stages.values()
                                                          if isinstance(info, dict))
            srows.append(["total", duration(total), ""])
            self.p("Wall time of each pipeline stage (run.json):")
            self.table(["pipeline stage", "wall time", "status"], srows)
        hw = run.state.get("hardware")
        if isinstance(hw, dict) and hw:
            self.p("Hardware: " + ", ".join(f"{k} {v}" for k, v in hw.items()) + ".")

    def training(self) -> None:
        logs = {stage_label(s): lines for s, lines in self.run.logs.items()
                if any("loss" in r for r in lines)}
        if not logs:
            return
        self.h(2, "Training")
        self.figure(figures.loss_curves, "loss.png", "Training loss per step (line) and validation loss "
                    "(markers) for each stage.", logs)

    # exams ----------------------------------------------------------------------------------------------
    def _setting_columns(self, task_names: list[str]) -> list[str]:
        keys = set()
        for t in task_names:
            for s in self.run.stages_with(t):
                keys |= {k for k in self.run.task(s, t)["summary"] if re.fullmatch(r"acc_(cloze|letter)_\d+shot", k)}

        def order(k):
            form, shots = re.fullmatch(r"acc_(cloze|letter)_(\d+)shot", k).groups()
            return (form != "cloze", -int(shots))

        return sorted(keys, key=order)

    @staticmethod
    def _setting_label(key: str) -> str:
        form, shots = re.fullmatch(r"acc_(cloze|letter)_(\d+)shot", key).groups()
        return f"{form} {shots}-shot"

    def exams(self) -> None:
        run = self.run
        tasks = [t for t in run.tasks("exams") if run.stages_with(t)]
        if not tasks:
            return
        self.h(2, "Exams in the built-in world, by language")
        self.p("Multiple-choice exams in MMLU layout, in two formulations. Letter: lm-evaluation-harness's mmlu "
               "prompt (subject header, the question with options A-D, 'Answer:'), scored by the likelihood of "
               "' A' ... ' D'. Cloze: '<question>\\nAnswer:' followed by each option's own text, scored by its "
               "likelihood per character (acc_norm). Few-shot examples are the first k of the dev split. Small "
               "models reach high cloze accuracy long before they learn to map options to letters, so both are "
               "shown; chance is 25%.")
        cols = self._setting_columns(tasks)
        rows = []
        for t in tasks:
            lang = t.split("_", 1)[1] if "_" in t else t
            for s in run.stages_with(t):
                summ = run.task(s, t)["summary"]
                rows.append([LANG_NAMES.get(lang, lang), stage_label(s)] + [pct(summ.get(c)) for c in cols]
                            + [str(summ.get("n", "–"))])
        self.table(["language", "stage"] + [self._setting_label(c) for c in cols] + ["questions"], rows)
        # Multilingual bars: the headline (largest-shot) numbers of every stage, both formulations.
        langs = [t.split("_", 1)[1] for t in tasks if "_" in t]
        series: dict[str, list] = {}
        chance = []
        for s in run.eval_stages:
            for form in ("cloze", "letter"):
                vals = []
                for t in tasks:
                    res = run.task(s, t)
                    vals.append(res["summary"].get(f"acc_{form}") if res else None)
                    if res and res["summary"].get("chance"):
                        chance.append(res["summary"]["chance"])
                if any(v is not None for v in vals):
                    series[f"{stage_label(s)}, {form}"] = vals
        if series:
            shots = next((run.task(s, t)["summary"].get("headline_shots") for t in tasks for s in run.stages_with(t)), None)
            self.figure(figures.grouped_bars, "exams_by_language.png",
                        f"Exam accuracy by language ({shots}-shot), each stage in both formulations. The world "
                        "states facts far more often in English than in the other languages.",
                        [LANG_NAMES.get(lang, lang) for lang in langs], series, title="World exams by language",
                        ylabel="accuracy", chance=sum(chance) / len(chance) if chance else None, horizontal=True)
        self._categories(tasks[0] if "exams_en" not in tasks else "exams_en")

    def _categories(self, task: str) -> None:
        run = self.run
        stages = run.stages_with(task)
        cats = sorted({c for s in stages for c in run.task(s, task)["summary"].get("by_category", {})})
        if not cats:
            return
        lang = task.split("_", 1)[1] if "_" in task else task
        rows = []
        for c in cats:
            row = [c]
            for s in stages:
                summ = run.task(s, task)["summary"]
                k = summ.get("headline_shots")
                cell = summ.get("by_category", {}).get(c, {})
                row += [pct(cell.get(f"acc_cloze_{k}shot")), pct(cell.get(f"acc_letter_{k}shot"))]
            rows.append(row)
        headers = ["category"] + [f"{stage_label(s)} {f}" for s in stages for f in ("cloze", "letter")]
        self.p(f"By category ({LANG_NAMES.get(lang, lang)}):")
        self.table(headers, rows)

    def mmlu(self) -> None:
        run = self.run
        tasks = [t for t in run.tasks("mmlu") if run.stages_with(t)]
        if not tasks:
            return
        self.h(2, "MMLU")
        self.p("The same multiple-choice evaluation on MMLU files in the original release layout (57 subjects). "
               "A model trained only on the built-in world knows none of these facts: near-chance accuracy is "
               "expected, and the point is that real benchmark files run end to end.")
        cols = self._setting_columns(tasks)
        rows = []
        for t in tasks:
            for s in run.stages_with(t):
                summ = run.task(s, t)["summary"]
                rows.append([t, stage_label(s)] + [pct(summ.get(c)) for c in cols]
                            + [str(summ.get("n", "–")), num(summ.get("items_per_s"), 0)])
        self.table(["task", "stage"] + [self._setting_label(c) for c in cols] + ["questions", "questions/s"], rows)
        self._categories(tasks[0])

    def truthfulqa(self) -> None:
        run = self.run
        stages = run.stages_with("truthfulqa")
        if not stages:
            return
        self.h(2, "TruthfulQA")
        self.p("TruthfulQA-style multiple choice on the world's misconceptions, which its corpus repeats more "
               "often than their corrections. MC1: the single true answer is the most likely one. MC2: the "
               "normalised probability mass on the true answers. 0-shot prompts are 'Q: ...\\nA:'; 5-shot adds "
               "a fixed primer of five world-neutral Q/A pairs; chat asks through the chat template.")
        rows = []
        for s in stages:
            summ = run.task(s, "truthfulqa")["summary"]
            for fmt in summ.get("formats", []):
                rows.append([stage_label(s), fmt, pct(summ.get(f"mc1_{fmt}")), pct(summ.get(f"mc2_{fmt}"))])
        self.table(["stage", "prompt", "MC1", "MC2"], rows)
        bars: dict[str, list] = {}
        if "base" in stages:
            base = run.task("base", "truthfulqa")["summary"]
            for fmt, label in (("0shot", "base 0-shot"), ("5shot", "base 5-shot")):
                if f"mc1_{fmt}" in base:
                    bars[label] = [base.get(f"mc1_{fmt}"), base.get(f"mc2_{fmt}")]
        post = self.post_stage("truthfulqa")
        if post:
            summ = run.task(post, "truthfulqa")["summary"]
            fmt = "chat" if "mc1_chat" in summ else "0shot"
            bars[f"{stage_label(post)} ({fmt})"] = [summ.get(f"mc1_{fmt}"), summ.get(f"mc2_{fmt}")]
        if bars:
            chance = run.task(stages[0], "truthfulqa")["summary"].get("mc1_chance")
            self.figure(figures.grouped_bars, "truthfulqa.png", "TruthfulQA accuracy: the base model 0-shot and "
                        "5-shot, and the post-trained model.", ["MC1", "MC2"], bars, title="TruthfulQA",
                        ylabel="accuracy", chance=chance)

    def factuality(self) -> None:
        run = self.run
        stages = run.stages_with("factuality")
        if not stages:
            return
        self.h(2, "Factuality by category")
        self.p("Open questions about the world's facts, answered in the model's own words. 'contains': the "
               "normalised reference appears in the first line of the answer (as words; as a substring in "
               "Japanese and Korean); 'exact': the first line is exactly the reference. Base models are "
               "prompted in the style of the corpus's Q/A pages, chat models through the chat template.")
        cats = sorted({c for s in stages for c in run.task(s, "factuality")["summary"].get("by_category", {})})
        # a chat model that takes images is also asked each question after a picture turn
        metrics = {s: ["contains", "exact_match"] + (["contains_after_picture"] if "contains_after_picture" in
                   run.task(s, "factuality")["summary"] else []) for s in stages}
        names = {"contains": "contains", "exact_match": "exact", "contains_after_picture": "after a picture"}
        rows = []
        for c in cats + ["all"]:
            row = [c]
            for s in stages:
                summ = run.task(s, "factuality")["summary"]
                cell = summ if c == "all" else summ.get("by_category", {}).get(c, {})
                row += [pct(cell.get(m)) for m in metrics[s]]
            rows.append(row)
        self.table(["category"] + [f"{stage_label(s)} {names[m]}" for s in stages for m in metrics[s]], rows)
        if any("contains_after_picture" in m for m in metrics.values()):
            self.p("'after a picture': the same question asked as the second user turn, after a picture, its "
                   "question and the reference answer from the image benchmark ('contains').")
        show = [s for s in stages if s == "base"] + ([self.post_stage("factuality")] if self.post_stage("factuality") else [])
        series = {stage_label(s): [run.task(s, "factuality")["summary"].get("by_category", {}).get(c, {}).get("contains")
                                   for c in cats] for s in show}
        if cats and series:
            self.figure(figures.grouped_bars, "factuality.png", "Factual accuracy by category ('contains'), base "
                        "vs post-trained.", cats, series, title="Factuality by category", ylabel="accuracy")
        langs = sorted({g for s in stages for g in run.task(s, "factuality")["summary"].get("by_lang", {})})
        if len(langs) > 1:
            lrows = [[LANG_NAMES.get(g, g)] + [pct(run.task(s, "factuality")["summary"]["by_lang"].get(g, {}).get("contains"))
                                                for s in stages] for g in langs]
            self.p("By language ('contains'):")
            self.table(["language"] + [stage_label(s) for s in stages], lrows)

    def calibration(self) -> None:
        run = self.run
        stages = run.stages_with("calibration")
        if not stages:
            return
        self.h(2, "Calibration")
        first = run.task(stages[0], "calibration")
        self.p("Calibration of the exam answers ({}, {}-shot): the probability of each option is the softmax of "
               "the options' log-likelihoods, the confidence is the probability of the chosen option. ECE is the "
               "count-weighted gap between accuracy and confidence over 10 equal-width bins (and over 10 "
               "equal-mass bins); Brier is the multi-class Brier score.".format(
                   first["summary"].get("source", "exams"), first["summary"].get("shots", "k")))
        rows, panels = [], {}
        forms = [f for f in ("letter", "cloze") if any(f in run.task(s, "calibration")["summary"].get("reliability", {})
                                                        for s in stages)]
        for form in forms:
            for s in stages:
                summ = run.task(s, "calibration")["summary"]
                if form not in summ.get("reliability", {}):
                    continue
                rows.append([stage_label(s), form, pct(summ.get(f"acc_{form}")), pct(summ.get(f"mean_confidence_{form}")),
                             pct(summ.get(f"ece_width_{form}")), pct(summ.get(f"ece_mass_{form}")),
                             num(summ.get(f"brier_{form}"))])
                panels.setdefault(form, []).append({"title": f"{stage_label(s)}, {form}",
                                                    "bins": summ["reliability"][form]["width"],
                                                    "ece": summ.get(f"ece_width_{form}")})
        self.table(["stage", "formulation", "accuracy", "mean confidence", "ECE (10 equal-width)",
                    "ECE (10 equal-mass)", "Brier"], rows)
        flat = [p for form in forms for p in panels.get(form, [])]
        if flat:
            self.figure(figures.reliability_diagrams, "calibration.png", "Reliability diagrams, stages side by "
                        "side (rows: formulation). Bars: accuracy per confidence bin; dashed: perfect calibration.",
                        flat, ncols=max(len(v) for v in panels.values()))

    def bpb(self) -> None:
        run = self.run
        stages = run.stages_with("bpb")
        if not stages:
            return
        self.h(2, "Held-out bits per byte")
        langs = sorted({g for s in stages for g in run.task(s, "bpb")["summary"].get("by_lang", {})})
        rows = [[stage_label(s), num(run.task(s, "bpb")["summary"].get("bpb"))]
                + [num(run.task(s, "bpb")["summary"].get("by_lang", {}).get(g, {}).get("bpb")) for g in langs]
                for s in stages]
        self.p("Negative log-likelihood of held-out text of the pretraining distribution, in bits per UTF-8 byte "
               "(lower is better; independent of the tokenizer).")
        self.table(["stage", "all"] + [LANG_NAMES.get(g, g) for g in langs], rows)

    def followup(self) -> None:
        run = self.run
        stages = run.stages_with("followup")
        if not stages:
            return
        self.h(2, "Follow-up questions")
        self.p("Questions that only make sense with the earlier turns ('Where is it?'), asked with those turns, "
               "alone, and rewritten to name the entity (the ceiling). Accuracy: the reference appears in the "
               "first line of the reply.")
        rows = [[stage_label(s)] + [pct(run.task(s, "followup")["summary"].get(k))
                                    for k in ("acc_with_context", "acc_standalone", "acc_explicit")] for s in stages]
        self.table(["stage", "with context", "without context", "explicit question"], rows)

    def image_qa(self) -> None:
        run = self.run
        stages = run.stages_with("image_qa")
        if not stages:
            return
        self.h(2, "Image understanding")
        self.p("Questions about images by task type, scored by normalised exact match of the final answer (what "
               "follows the reply's last \"answer is\", else its first line), beside a blind baseline that asks "
               "the same questions with each image replaced by a blank grey one (what the text alone gives away), "
               "and the accuracy of always giving the task's most common answer (what no reading at all scores). "
               "\"After a picture\" asks each question as the second turn of a conversation, after another "
               "task's picture, its question and its reference answer.")
        tasks = sorted({t for s in stages for t in run.task(s, "image_qa")["summary"].get("by_task", {})})
        summaries = {s: run.task(s, "image_qa")["summary"] for s in stages}
        cells = {(t, s): summaries[s] if t == "all" else summaries[s].get("by_task", {}).get(t, {})
                 for t in tasks + ["all"] for s in stages}
        self.table(["task", "majority answer"] + [f"{stage_label(s)} {m}" for s in stages
                                                  for m in ("with image", "after a picture", "blind")],
                   [[t, pct(cells[t, stages[-1]].get("acc_majority"))]
                    + [pct(cells[t, s].get(k)) for s in stages for k in ("acc", "acc_after_turn", "acc_blind")]
                    for t in tasks + ["all"]])
        worked = [t for t in tasks if any("working_acc" in cells[t, s] for s in stages)]
        if worked:
            self.p("Where a reply works its way to the answer, its two halves apart: how often the working names "
                   "the step the picture had to give (for a chart, the tallest bar), and how often the answer is "
                   "right when it does (for a chart, the name the question gives that bar).")
            self.table(["task"] + [f"{stage_label(s)} {m}" for s in stages for m in ("step right", "answer right "
                                                                                    "given the step")],
                       [[t] + [pct(cells[t, s].get(k)) for s in stages for k in ("working_acc", "acc_given_working")]
                        for t in worked])
        s = stages[-1]
        by = run.task(s, "image_qa")["summary"].get("by_task", {})
        series = {"with image": [by.get(t, {}).get("acc") for t in tasks],
                  "blank image (blind)": [by.get(t, {}).get("acc_blind") for t in tasks],
                  "majority answer": [by.get(t, {}).get("acc_majority") for t in tasks]}
        self.figure(figures.grouped_bars, "image_qa.png", f"Image QA accuracy by task ({stage_label(s)}) against "
                    "the blind baseline and the majority answer.", tasks, series, title=f"Image QA: {stage_label(s)}",
                    ylabel="accuracy")

    # transcripts -----------------------------------------------------------------------------------------
    def _image_files(self, res: dict, paths: list[str]) -> list[str]:
        roots = search_roots(res["config"]["path"]) if res["config"].get("path") else []
        roots.append(self.run.root / "world")
        out = []
        for rel in paths:
            copied = self.copy_image(resolve_path(rel, roots))
            if copied:
                out.append(copied)
        return out

    def transcripts(self) -> None:
        run = self.run
        examples: list[Transcript] = []
        img_stage = run.stages_with("image_qa")[-1] if run.stages_with("image_qa") else None
        if img_stage:
            res = run.task(img_stage, "image_qa")
            seen = set()
            for it in res["items"]:
                if it.get("task") in seen or "output" not in it:
                    continue
                seen.add(it.get("task"))
                images = self._image_files(res, it.get("images", []))
                mark = "correct" if it.get("correct") else "wrong"
                examples.append(Transcript(
                    f"Image QA, {it.get('task')} ({stage_label(img_stage)})",
                    [("user", it["question"], images), ("assistant", it["output"], [])],
                    f"reference: {it['answer']} ({mark}); blind baseline answered: {it.get('output_blind', '–')}"))
                if len(seen) >= 8:
                    break
        post = self.post_stage("followup")
        if post:
            res = run.task(post, "followup")
            for it in res["items"][:2]:
                turns = [(m["role"], _content_text(m.get("content")), []) for m in it["messages"]]
                turns.append(("assistant", it["output"]["with_context"], []))
                examples.append(Transcript(f"Follow-up ({stage_label(post)})", turns,
                                           f"reference: {it['answer']}; asked without the earlier turns: "
                                           f"{it['output'].get('standalone', '–')}"))
        fact_stages = run.stages_with("factuality")
        if fact_stages:
            by_lang: dict[str, int] = {}
            items = {s: run.task(s, "factuality")["items"] for s in fact_stages}
            for i, it in enumerate(items[fact_stages[-1]]):
                if by_lang.get(it.get("lang"), 0) >= 1:
                    continue
                by_lang[it.get("lang")] = 1
                turns = [("user", it["question"], [])]
                for s in fact_stages:
                    if i < len(items[s]):
                        turns.append((stage_label(s), items[s][i].get("output", ""), []))
                examples.append(Transcript(f"Factuality, {it.get('category')} ({it.get('lang')})", turns,
                                           f"reference: {it['answer']}"))
        if not examples:
            return
        self.h(2, "Example transcripts")
        self.p("Answers as the models gave them (greedy decoding), with their images.")
        self.blocks.extend(examples)

    # scaling and safety ------------------------------------------------------------------------------
    def scaling(self) -> None:
        d = self.run.root / "scaling"
        fit = _read_json(d / "fit.json")
        if not isinstance(fit, dict):
            return
        outcome = _read_json(d / "outcome.json") or {}
        self.h(2, "Predictable scaling")
        self.p("Before the final model trained, a ladder of smaller models trained with the same recipe; a power "
               "law L(C) = a·C^b + c fitted to their final losses predicted the final model's loss, and a power law "
               "without offset, −log pass rate = α·C^−k, fitted to their mean negative log pass rate on world exam "
               "questions predicted the final model's.")
        drawn = False
        try:
            from tinygpt4.scaling.figures import plot_scaling

            plot_scaling(d, self.out / "scaling.png")
            drawn = True
        except Exception:  # the scaling figure is optional; fall back to the one in scaling/
            if (d / "scaling.png").is_file():
                shutil.copyfile(d / "scaling.png", self.out / "scaling.png")
                drawn = True
        if drawn:
            self.figures.append("scaling.png")
            self.blocks.append(Figure("scaling.png", "Ladder runs, the fitted law, the prediction with its "
                                      "interval, and the actual final loss."))
        interval = fit.get("predicted_final_loss_interval") or [None, None]
        rows = [["final validation loss", num(fit.get("predicted_final_loss")),
                 f"[{num(interval[0])}, {num(interval[1])}]", num(outcome.get("actual_final_loss")),
                 pct(outcome.get("relative_error")) if "relative_error" in outcome else "–"]]
        cap = fit.get("capability")
        if isinstance(cap, dict):
            ci = cap.get("interval") or [None, None]
            rows.append([str(cap.get("name", "capability")), num(cap.get("predicted")),
                         f"[{num(ci[0])}, {num(ci[1])}]", num(outcome.get("actual_metric")),
                         pct(outcome["metric_relative_error"]) if "metric_relative_error" in outcome else "–"])
        self.table(["quantity", "predicted", "interval", "actual", "relative error"], rows)
        pts = fit.get("points") or []
        if pts:
            self.table(["ladder run", "training FLOPs", "final val loss"],
                       [[str(i + 1), flops(p.get("flops")), num(p.get("final_val_loss"))] for i, p in enumerate(pts)])

    def safety(self) -> None:
        run = self.run
        rows = []
        for s in run.eval_stages:
            for task, res in run.evals[s].items():
                if not task.startswith("safety"):
                    continue
                for key, value in _flatten(res.get("summary", {})):
                    rows.append([stage_label(s), task, key, _measure(value)])
        if not rows:
            return
        self.h(2, "Safety")
        self.p("Safety evaluations (disallowed, sensitive and benign look-alike prompts), graded by the rubric "
               "graders the RL reward uses; numbers as each evaluation reports them.")
        self.table(["stage", "evaluation", "measure", "value"], rows)


def _flatten(summary: dict, prefix: str = "") -> list[tuple[str, float]]:
    out = []
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            if not key.endswith("wall_s"):
                out.append((key, v))
        elif isinstance(v, dict) and not prefix:
            out += _flatten(v, key + ".")
    return out


def _measure(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return pct(value) if 0 <= value <= 1 else num(value)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "[image]") if p.get("type") == "text" else "[image]" for p in content)
    return ""


# ---- rendering -------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Escape text for Markdown: HTML entities for &, <, >, and a backslash before the characters that make
    emphasis, code, links and table cells, so model output can neither inject HTML nor become formatting.
    Newlines become <br> (the text stays inside its paragraph or table cell)."""
    text = html.escape(str(text), quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # no heading or list item at the start of the text
    text = re.sub(r"^(\s*)(#|[-+](?=\s|$))", r"\1\\\2", text)  # (">" is already &gt;)
    text = re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", text)
    return text.replace("\r", "").replace("\n", "<br>")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {md_escape(b.text)}\n")
            if b.level == 1:
                toc = [x for x in blocks if isinstance(x, Heading) and x.level == 2]
                out.append("\n".join(f"- [{md_escape(x.text)}](#{x.anchor})" for x in toc) + "\n")
        elif isinstance(b, Para):
            out.append(md_escape(b.text) + "\n")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(md_escape(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out.append(f"![{md_escape(b.caption)}]({b.file})\n\n*{md_escape(b.caption)}*\n")
        elif isinstance(b, Transcript):
            out.append(f"**{md_escape(b.title)}**\n")
            for speaker, text, images in b.turns:
                for img in images:
                    out.append(f"> ![image]({img})")
                out.append(f"> **{md_escape(speaker)}:** {md_escape(text)}\n>")
            if b.note:
                out.append(f"> *{md_escape(b.note)}*")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;
color:#555}.transcript{border-left:3px solid #4c72b0;margin:1em 0;padding:.2em .9em;background:#fafafa}
.transcript img{width:128px;image-rendering:pixelated;border:1px solid #ccc;margin:.2em .4em .2em 0}
.speaker{font-weight:600}.note{font-size:.85em;color:#555}.turn{white-space:pre-wrap;margin:.3em 0}
"""


def render_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level} id=\"{e(b.anchor)}\">{e(b.text)}</h{b.level}>")
            if b.level == 1:
                toc = [x for x in blocks if isinstance(x, Heading) and x.level == 2]
                out.append("<ul>" + "".join(f"<li><a href=\"#{e(x.anchor)}\">{e(x.text)}</a></li>" for x in toc)
                           + "</ul>")
        elif isinstance(b, Para):
            out.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Figure):
            out.append(f"<figure><img src=\"{e(b.file)}\" alt=\"{e(b.caption)}\">"
                       f"<figcaption>{e(b.caption)}</figcaption></figure>")
        elif isinstance(b, Transcript):
            parts = [f"<div class=\"transcript\"><p><b>{e(b.title)}</b></p>"]
            for speaker, text, images in b.turns:
                imgs = "".join(f"<img src=\"{e(i)}\" alt=\"image\">" for i in images)
                parts.append(f"<div class=\"turn\">{imgs}{'<br>' if imgs else ''}"
                             f"<span class=\"speaker\">{e(speaker)}:</span> {e(text)}</div>")
            if b.note:
                parts.append(f"<p class=\"note\">{e(b.note)}</p>")
            parts.append("</div>")
            out.append("".join(parts))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write <run>/report/report.md, index.html and the figures; return the path of index.html."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    if (out / "images").is_dir():  # images of an earlier build: the new one copies its own
        shutil.rmtree(out / "images")
    builder = ReportBuilder(run, out)
    blocks = builder.build()
    title = next((b.text for b in blocks if isinstance(b, Heading)), "tinygpt4 report")
    from tinygpt4.runtime import atomic_write_text

    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "index.html", render_html(blocks, title))
    return out / "index.html"
