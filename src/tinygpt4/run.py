"""`tinygpt4 run`: world → tokenizer → scaling → pretrain → SFT → evals → report, one stage at a time.

Each finished stage is recorded in run.json with its wall time, so re-running skips it; an interrupted
training stage resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_text, resolve_device

# What each preset runs. The tiny preset is sized for a 2-core CPU (25-35 minutes with AVX2 only). It pretrains
# with Muon (train/muon.py) for 400 steps, which end at a lower validation loss than 700 AdamW steps did (0.642
# vs 0.650) in 57% of the time; the SFT model on top answered more image questions (58.6% vs 54.3%), follow-ups
# and factual questions, fewer English exam questions (75.3% vs 81.2%; one run each, AVX2 host). Its ladder
# averages three seeds per rung: with one, the prediction erred by +7.1%, with three by +4.1%. Its vocabulary
# stays at 8,192 tokens: 4,096 would halve the output head (44% of the matmul parameters), make a step 12-20%
# cheaper, and ended 400 steps at 0.210 bits per byte instead of 0.218, but the ladder mispredicted that target
# by +15% (and a 300-step one by +45%). It has no frozen-decoder vision warm-up: with a tower trained from
# scratch, the decoder has to learn to read the image tokens too, and the same minutes spent on joint steps (330
# instead of 80 warm-up + 250) doubled colour accuracy (20% -> 44%, 200 held-out items) and took multi-image
# comparison from 74% to 94%. Its tower does train alone first, without the decoder, for 250 steps on the
# captions (train/tower_pretrain.py, about a minute): reading the sign went from 11% of held-out signs to 55% on
# one SFT run (42% after 150 steps) and 48-71% on others. Its fresh projector, between that tower and the
# pretrained decoder, steps at 4x the rate (on one run: sign 78% -> 83%, count 43% -> 48%, multi-image 56% ->
# 72%). Its 285 SFT steps see the data as often as 330 did before best-fit packing filled the rows (99% of
# positions, was 86%).
RUN_PRESETS = {
    "tiny": {"world_scale": "small", "vocab_size": 8192, "pretrain_steps": 400, "sft_steps": 285,
             "sft_lr": 5e-4, "sft_text_mix": 0.2, "sft_caption_mix": 0.3, "tower_steps": 250,
             "projector_lr_mult": 4,
             "vision_warmup_steps": 0, "ladder_rungs": 6, "ladder_seeds": 3},
    # Pretraining + SFT in 9.6 minutes on a 2-core AVX2 CPU instead of 20.2, for a weaker base model (English
    # exams 69.5% vs 78.0%, follow-ups 27% vs 38%) whose ladder overshoots its loss by 67% (README). With word
    # pairs in the tower's targets, count, colour, chart-largest and sign reading stayed 30 points above a blank
    # image over two SFT seeds (colour +33 both times, the closest); on `tiny` the frozen tower alone left colour +20.
    "tiny-fast": {"world_scale": "small", "vocab_size": 4096, "model_preset": "tiny", "width": 192,
                  "pretrain_steps": 300, "pretrain_lr": 4e-3, "sft_steps": 285, "sft_lr": 5e-4, "sft_text_mix": 0.2,
                  "sft_caption_mix": 0.3, "tower_steps": 250, "tower_pairs": 10, "freeze_tower": True,
                  "projector_lr_mult": 4, "vision_warmup_steps": 0, "ladder_rungs": 6, "ladder_seeds": 3},
    "d12": {"world_scale": "full", "vocab_size": 32768, "pretrain_steps": None, "sft_steps": 2000,
            "sft_lr": 3e-4, "sft_text_mix": 0.2, "sft_caption_mix": 0.3, "tower_steps": 1000,
            "projector_lr_mult": 1,
            "vision_warmup_steps": 500, "ladder_rungs": 6, "ladder_seeds": 1},
}


@dataclass
class RunContext:
    out: Path
    preset: str
    seed: int
    device: str
    quiet: bool
    settings: dict
    state: dict = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def eval_device(self) -> str:
        """Where evaluation runs: the training device ("auto" picks the GPU when there is one)."""
        return str(resolve_device(self.device))


# ---- stages ----------------------------------------------------------------------------------------------

def stage_world(ctx: RunContext) -> dict:
    from tinygpt4.world.build import build_world

    manifest = build_world(ctx.path("world"), seed=ctx.seed, scale=ctx.settings["world_scale"], force=True)
    return {"scale": ctx.settings["world_scale"], "counts": manifest.get("counts", {})}


def stage_tokenizer(ctx: RunContext) -> dict:
    from tinygpt4.tokenizer import bytes_per_token, language_samples, train_tokenizer

    data = [str(ctx.path("world", "pretrain"))]
    tok = train_tokenizer(data, ctx.settings["vocab_size"])
    tok.save(ctx.path("tokenizer"))
    samples = language_samples([str(ctx.path("world", "heldout"))])
    return {"vocab_size": tok.vocab_size,
            **{f"bytes_per_token_{k}": round(bytes_per_token(tok, v), 3) for k, v in sorted(samples.items())}}


def pretrain_config(ctx: RunContext, resume: bool = False):
    from tinygpt4.config import PRESETS, config_for_depth
    from tinygpt4.train.pretrain import PretrainConfig

    s = ctx.settings
    preset = s.get("model_preset", ctx.preset)
    # a preset narrower than its depth's default width (the scaling ladder sizes its rungs from this model)
    model = config_for_depth(PRESETS[preset], s["vocab_size"], width=s["width"]) if s.get("width") else None
    return PretrainConfig(
        data=[str(ctx.path("world", "pretrain"))], tokenizer=str(ctx.path("tokenizer")), out=str(ctx.path("base")),
        preset=preset, model=model, lr=s.get("pretrain_lr"), max_steps=s["pretrain_steps"], seed=ctx.seed,
        device=ctx.device, optimizer=s.get("pretrain_optimizer"),
        quiet=ctx.quiet, resume=resume, cache_dir=str(ctx.path(".cache", "tokens")),
    )


def stage_scaling(ctx: RunContext) -> dict:
    from tinygpt4.scaling.ladder import run_ladder

    fit = run_ladder(pretrain_config(ctx), ctx.path("scaling"), n_rungs=ctx.settings["ladder_rungs"],
                     seeds=ctx.settings["ladder_seeds"], seed=ctx.seed, exams=str(ctx.path("world", "exams")), log=_say)
    return {"predicted_final_loss": fit.get("predicted_final_loss")}


def stage_pretrain(ctx: RunContext) -> dict:
    from tinygpt4.train.pretrain import run_pretrain

    resume = ctx.path("base", "resume").exists()
    summary = run_pretrain(pretrain_config(ctx, resume=resume))
    out = {"final_val_loss": summary["final_val_loss"], "tokens": summary["tokens"]}
    if ctx.path("scaling", "fit.json").exists() and not ctx.path("scaling", "outcome.json").exists():
        from tinygpt4.scaling.ladder import capability_metric, load_exam_items, record_outcome

        items = load_exam_items(ctx.path("world", "exams"))
        metric = capability_metric(str(ctx.path("base")), items, device=ctx.eval_device)
        outcome = record_outcome(ctx.path("scaling"), summary["final_val_loss"], metric.get("value"))
        out["scaling_relative_error"] = outcome.get("relative_error")
    return out


def stage_sft(ctx: RunContext) -> dict:
    from tinygpt4.train.sft import SFTConfig, run_sft

    w = ctx.path("world")
    cfg = SFTConfig(
        base=str(ctx.path("base")), data=[str(w / "chat" / "sft.jsonl")], out=str(ctx.path("sft")),
        captions=str(w / "captions.jsonl"), tower_steps=ctx.settings["tower_steps"],
        projector_lr_mult=ctx.settings["projector_lr_mult"],
        vision_warmup_steps=ctx.settings["vision_warmup_steps"],
        text_data=[str(w / "pretrain")], text_mix=ctx.settings["sft_text_mix"], lr=ctx.settings["sft_lr"],
        caption_mix=ctx.settings["sft_caption_mix"], tower_pairs=ctx.settings.get("tower_pairs", 0),
        freeze_tower=ctx.settings.get("freeze_tower", False),
        seed=ctx.seed, device=ctx.device, quiet=ctx.quiet,
        resume=ctx.path("sft", "resume").exists(),
    )
    if ctx.settings["sft_steps"]:
        cfg.max_steps = ctx.settings["sft_steps"]
    summary = run_sft(cfg)
    return {"final_val_loss": summary.get("final_val_loss"), "tokens": summary.get("tokens")}


def stage_evals(ctx: RunContext) -> dict:
    from tinygpt4.evals.suite import run_suite

    device = ctx.eval_device
    out = {}
    for stage in ("base", "sft"):
        if ctx.path(stage, "model.safetensors").exists():
            res = run_suite(ctx.path(stage), ctx.path("world"), ctx.path("evals", stage), stage, device=device)
            out[stage] = {task: {k: v for k, v in s.items() if isinstance(v, int | float)} for task, s in res.items()}
    return out


def stage_report(ctx: RunContext) -> dict:
    from tinygpt4.report.build import build_report

    path = build_report(ctx.out)
    return {"report": str(path)}


STAGES: list[tuple[str, Callable[[RunContext], dict], str]] = [
    ("world", stage_world, "generate the built-in world"),
    ("tokenizer", stage_tokenizer, "train the BPE tokenizer"),
    ("scaling", stage_scaling, "small runs, fit L(C), predict the final loss"),
    ("pretrain", stage_pretrain, "pretrain the base model"),
    ("sft", stage_sft, "supervised fine-tuning, with a vision tower trained from scratch"),
    ("evals", stage_evals, "evaluate base and SFT"),
    ("report", stage_report, "write the technical report"),
]


# ---- driver ----------------------------------------------------------------------------------------------

def _say(msg: str) -> None:
    print(msg, flush=True)


def _load_state(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e}); delete it to start the run over") from None


def run(out: str | Path, preset: str = "tiny", seed: int = 0, device: str = "auto", quiet: bool = False,
        only: list[str] | None = None, skip: list[str] | None = None, overrides: dict | None = None) -> dict:
    if preset not in RUN_PRESETS:
        raise UserError(f"unknown run preset {preset!r} (choose from {', '.join(RUN_PRESETS)})")
    settings = {**RUN_PRESETS[preset], **{k: v for k, v in (overrides or {}).items() if v is not None}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "run.json"
    state = _load_state(state_path)
    if state and (state.get("preset"), state.get("seed")) != (preset, seed):
        raise UserError(f"{out} holds a run with preset {state.get('preset')} and seed {state.get('seed')}; "
                        "use another --out")
    state.setdefault("preset", preset)
    state.setdefault("seed", seed)
    state.setdefault("stages", {})
    state["hardware"] = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version()}
    state.setdefault("settings", settings)
    if state["settings"] != settings:
        raise UserError(f"{out} was started with other settings ({state['settings']}); use another --out")
    ctx = RunContext(out, preset, seed, device, quiet, settings, state)
    names = [s[0] for s in STAGES]
    for bad in (only or []) + (skip or []):
        if bad not in names:
            raise UserError(f"unknown stage {bad!r} (stages: {', '.join(names)})")
    t_all = time.time()
    for i, (name, fn, what) in enumerate(STAGES, 1):
        done = state["stages"].get(name, {}).get("status") == "done"
        if (only and name not in only) or (skip and name in skip):
            continue
        if done and not only:
            _say(f"[{i}/{len(STAGES)}] {name}: done earlier ({state['stages'][name]['wall_s']:.0f}s), skipped")
            continue
        _say(f"[{i}/{len(STAGES)}] {name}: {what} ...")
        t0 = time.time()
        result = fn(ctx)
        wall = time.time() - t0
        state["stages"][name] = {"status": "done", "wall_s": round(wall, 2), **result}
        atomic_write_text(state_path, json.dumps(state, indent=2))
        _say(f"[{i}/{len(STAGES)}] {name}: finished in {wall:.0f}s")
    total = sum(s.get("wall_s", 0) for s in state["stages"].values())
    state["total_wall_s"] = round(total, 2)
    atomic_write_text(state_path, json.dumps(state, indent=2))
    _say(f"run complete in {time.time() - t_all:.0f}s this time ({total:.0f}s of stage time in all): "
         f"{out / 'report' / 'index.html'}")
    return state


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline, end to end",
                       description="world → tokenizer → scaling → pretrain → SFT → evals → report. Finished "
                       "stages are skipped on a re-run; an interrupted stage resumes.")
    p.add_argument("--preset", default="tiny", help=f"one of {', '.join(RUN_PRESETS)}")
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="run just these stages (again)")
    p.add_argument("--skip", nargs="+", metavar="STAGE", help="leave these stages out")
    p.add_argument("--world-scale", choices=["tiny", "small", "full"], default=None, help="override the preset's")
    p.add_argument("--pretrain-steps", type=int, default=None, help="override the preset's pretraining steps")
    p.add_argument("--sft-steps", type=int, default=None, help="override the preset's SFT steps")
    p.add_argument("--pretrain-optimizer", choices=["adamw", "muon"], default=None,
                   help="override the preset's pretraining optimizer (the scaling ladder follows it)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cli)


def _cli(a) -> int:
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    overrides = {"world_scale": a.world_scale, "pretrain_steps": a.pretrain_steps, "sft_steps": a.sft_steps,
                 "pretrain_optimizer": a.pretrain_optimizer}
    run(a.out, a.preset, a.seed, a.device, a.quiet, a.only, a.skip, overrides)
    return 0
