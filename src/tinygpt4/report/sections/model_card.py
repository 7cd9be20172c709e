"""Model card: each checkpoint stage's size, compute and final losses (summary.json), the vision tower's
own pretraining, the wall time of each pipeline stage and the hardware (run.json)."""

from __future__ import annotations

from tinygpt4.report.blocks import Doc, duration, flops, num, si
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label

OPTIMIZER_NAMES = {"adamw": "AdamW", "muon": "Muon + AdamW"}


def _stage_rows(doc: Doc) -> list[list[str]]:
    rows = []
    for s in doc.run.stages:
        m = doc.run.summaries.get(s) or {}
        if not m:
            continue
        rows.append([stage_label(s), si(m.get("params")), si(m.get("tokens")), flops(m.get("flops")),
                     duration(m.get("wall_s")), num(m.get("final_val_loss")), num(m.get("final_val_bpb")),
                     OPTIMIZER_NAMES.get(m.get("optimizer"), "–"), str(m.get("device", "–"))])
    return rows


def _tower(doc: Doc) -> None:
    sft = doc.run.summaries.get("sft") or {}
    tower = sft.get("tower_pretrain")
    if not (isinstance(tower, dict) and tower.get("steps")):
        return
    pairs = tower.get("pairs_min_count") or 0
    what = (f"each caption's words and the pairs of adjacent words that {pairs} or more captions "
            "share" if pairs else "each caption's words")
    frozen = " SFT then kept it frozen." if sft.get("tower_frozen") else ""
    doc.p(f"Before SFT the fresh vision tower trained alone for {tower['steps']} steps "
          f"({si(tower.get('images'))} images from {si(tower.get('captions'))} captions, "
          f"{duration(tower.get('wall_s'))}), predicting from the picture {what} "
          f"(loss {num(tower.get('first_loss'))} to {num(tower.get('final_loss'))}).{frozen}")


def _pipeline_stages(doc: Doc, stages: dict) -> None:
    srows = [[name, duration(info.get("wall_s")), str(info.get("status", ""))]
             for name, info in stages.items() if isinstance(info, dict)]
    total = doc.run.state.get("total_wall_s") or sum(info.get("wall_s", 0) for info in stages.values()
                                                     if isinstance(info, dict))
    srows.append(["total", duration(total), ""])
    doc.p("Wall time of each pipeline stage (run.json):")
    doc.table(["pipeline stage", "wall time", "status"], srows)


@section("model_card", order=10)
def model_card(doc: Doc) -> None:
    state = doc.run.state
    rows = _stage_rows(doc)
    stages = (state.get("stages") or {}) if isinstance(state.get("stages"), dict) else {}
    if not rows and not stages:
        return
    doc.h(2, "Model card")
    if rows:
        doc.p("Parameters are counted with the output head (and the vision tower where there is one); "
              "training FLOPs are 6N per token plus attention, as in the Chinchilla and PaLM papers.")
        doc.table(["stage", "parameters", "tokens", "training FLOPs", "wall time", "final val loss",
                   "val bits/byte", "optimizer", "device"], rows)
        _tower(doc)
    if stages:
        _pipeline_stages(doc, stages)
    hw = state.get("hardware")
    if isinstance(hw, dict) and hw:
        doc.p("Hardware: " + ", ".join(f"{k} {v}" for k, v in hw.items()) + ".")
