"""`tinygpt4 run`: world → tokenizer → scaling → pretrain → SFT → RM → RL → evals → report, one stage at a time.

Each finished stage is recorded in run.json with its wall time, so re-running skips it; an interrupted
training stage resumes from its last checkpoint. A new stage is a function `stage_<name>(ctx) -> dict` (what
it returns is recorded in run.json) and one line in STAGES.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from tinygpt4.config import PRESETS, config_for_depth
from tinygpt4.data.readers import read_rubric
from tinygpt4.errors import UserError
from tinygpt4.evals.capability import capability_metric, load_exam_items
from tinygpt4.evals.suite import run_suite
from tinygpt4.report.build import build_report
from tinygpt4.runtime import atomic_write_text, resolve_device
from tinygpt4.safety.graders import LearnedGrader, RegexGrader, evaluate_grader
from tinygpt4.scaling.ladder import record_outcome, run_ladder
from tinygpt4.tokenizer import bytes_per_token, language_samples, train_tokenizer
from tinygpt4.train.pretrain import PretrainConfig, run_pretrain
from tinygpt4.train.reward import RMConfig, run_rm
from tinygpt4.train.rl import RLConfig, run_rl
from tinygpt4.train.sft import SFTConfig, run_sft
from tinygpt4.world.build import build_world


@dataclass(frozen=True)
class RunPreset:
    """What `tinygpt4 run` trains at each stage. docs/presets.md says why each preset is set as it is and
    what its settings measured."""

    world_scale: str  # tiny | small | full
    vocab_size: int
    pretrain_steps: int | None  # None: the model preset's own default
    sft_steps: int
    sft_lr: float
    tower_steps: int  # the vision tower's stage alone on the captions before SFT
    ladder_rungs: int
    ladder_seeds: int  # seeds per rung, averaged
    model_preset: str | None = None  # the model preset; None: the run preset's own name
    width: int | None = None  # narrower than the depth's default width
    pretrain_lr: float | None = None  # None: the model preset's default
    pretrain_optimizer: str | None = None  # adamw | muon; None: the model preset's default
    sft_text_mix: float = 0.2  # share of SFT rows that are pretraining text
    sft_caption_mix: float = 0.3  # share of SFT image examples that are captions
    projector_lr_mult: float = 1  # a fresh projector beside a pretrained decoder steps at this multiple
    vision_warmup_steps: int = 0  # SFT steps with the decoder frozen
    tower_pairs: int = 0  # the tower stage also predicts adjacent-token pairs shared by this many captions
    freeze_tower: bool = False  # keep the tower as its stage left it during SFT
    rm_steps: int = 150  # reward model steps (pairs of 16)
    rl_steps: int = 60  # RL steps (prompts_per_step x group_size samples each)
    rl_prompts_per_step: int = 6
    rl_group_size: int = 8
    rl_lr: float = 1e-5
    rl_beta: float = 0.1
    rl_max_new_tokens: int = 40

    def with_overrides(self, overrides: dict | None) -> RunPreset:
        """A copy with the given settings changed (None values are left as they are)."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise UserError(f"unknown run settings: {', '.join(sorted(unknown))}")
        return replace(self, **given)


RUN_PRESETS = {
    # a 2-core CPU: Muon pretraining, a tower stage alone on the captions, then joint SFT
    "tiny": RunPreset(world_scale="small", vocab_size=8192, pretrain_steps=400, sft_steps=285, sft_lr=5e-4,
                      tower_steps=250, ladder_rungs=6, ladder_seeds=3, projector_lr_mult=4),
    # the same depth in about half the training time: narrower, a smaller vocabulary, a frozen tower
    "tiny-fast": RunPreset(world_scale="small", vocab_size=4096, pretrain_steps=300, sft_steps=285, sft_lr=5e-4,
                           tower_steps=250, ladder_rungs=6, ladder_seeds=3, model_preset="tiny", width=192,
                           pretrain_lr=4e-3, tower_pairs=10, freeze_tower=True, projector_lr_mult=4),
    # one GPU
    "d12": RunPreset(world_scale="full", vocab_size=32768, pretrain_steps=None, sft_steps=2000, sft_lr=3e-4,
                     tower_steps=1000, ladder_rungs=6, ladder_seeds=1, vision_warmup_steps=500),
}


@dataclass
class RunContext:
    out: Path
    preset: str
    seed: int
    device: str
    quiet: bool
    settings: RunPreset
    state: dict = field(default_factory=dict)
    extra_evals: list[tuple[str, Path]] = field(default_factory=list)  # real benchmark files the user points at

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def eval_device(self) -> str:
        """Where evaluation runs: the training device ("auto" picks the GPU when there is one)."""
        return str(resolve_device(self.device))


# ---- stages ----------------------------------------------------------------------------------------------

def stage_world(ctx: RunContext) -> dict:
    manifest = build_world(ctx.path("world"), seed=ctx.seed, scale=ctx.settings.world_scale, force=True)
    return {"scale": ctx.settings.world_scale, "counts": manifest.get("counts", {})}


def stage_tokenizer(ctx: RunContext) -> dict:
    data = [str(ctx.path("world", "pretrain"))]
    tok = train_tokenizer(data, ctx.settings.vocab_size)
    tok.save(ctx.path("tokenizer"))
    samples = language_samples([str(ctx.path("world", "heldout"))])
    return {"vocab_size": tok.vocab_size,
            **{f"bytes_per_token_{k}": round(bytes_per_token(tok, v), 3) for k, v in sorted(samples.items())}}


def pretrain_config(ctx: RunContext, resume: bool = False) -> PretrainConfig:
    s = ctx.settings
    preset = s.model_preset or ctx.preset
    # a preset narrower than its depth's default width (the scaling ladder sizes its rungs from this model)
    model = config_for_depth(PRESETS[preset], s.vocab_size, width=s.width) if s.width else None
    return PretrainConfig(
        data=[str(ctx.path("world", "pretrain"))], tokenizer=str(ctx.path("tokenizer")), out=str(ctx.path("base")),
        preset=preset, model=model, lr=s.pretrain_lr, max_steps=s.pretrain_steps, seed=ctx.seed,
        device=ctx.device, optimizer=s.pretrain_optimizer,
        quiet=ctx.quiet, resume=resume, cache_dir=str(ctx.path(".cache", "tokens")),
    )


def stage_scaling(ctx: RunContext) -> dict:
    fit = run_ladder(pretrain_config(ctx), ctx.path("scaling"), n_rungs=ctx.settings.ladder_rungs,
                     seeds=ctx.settings.ladder_seeds, seed=ctx.seed, exams=str(ctx.path("world", "exams")), log=_say)
    return {"predicted_final_loss": fit.get("predicted_final_loss")}


def stage_pretrain(ctx: RunContext) -> dict:
    resume = ctx.path("base", "resume").exists()
    summary = run_pretrain(pretrain_config(ctx, resume=resume))
    out = {"final_val_loss": summary["final_val_loss"], "tokens": summary["tokens"]}
    if ctx.path("scaling", "fit.json").exists() and not ctx.path("scaling", "outcome.json").exists():
        items = load_exam_items(ctx.path("world", "exams"))
        metric = capability_metric(str(ctx.path("base")), items, device=ctx.eval_device)
        outcome = record_outcome(ctx.path("scaling"), summary["final_val_loss"], metric.get("value"))
        out["scaling_relative_error"] = outcome.get("relative_error")
    return out


def stage_sft(ctx: RunContext) -> dict:
    w, s = ctx.path("world"), ctx.settings
    cfg = SFTConfig(
        base=str(ctx.path("base")), data=[str(w / "chat" / "sft.jsonl")], out=str(ctx.path("sft")),
        captions=str(w / "captions.jsonl"), tower_steps=s.tower_steps, projector_lr_mult=s.projector_lr_mult,
        vision_warmup_steps=s.vision_warmup_steps, text_data=[str(w / "pretrain")], text_mix=s.sft_text_mix,
        lr=s.sft_lr, caption_mix=s.sft_caption_mix, tower_pairs=s.tower_pairs, freeze_tower=s.freeze_tower,
        seed=ctx.seed, device=ctx.device, quiet=ctx.quiet, resume=ctx.path("sft", "resume").exists(),
    )
    if s.sft_steps:
        cfg.max_steps = s.sft_steps
    summary = run_sft(cfg)
    return {"final_val_loss": summary.get("final_val_loss"), "tokens": summary.get("tokens")}


def train_rubric_grader(ctx: RunContext) -> dict:
    """The learned rubric grader on the world's labelled responses (split train), scored on the held-out
    ones beside the policy's regular expressions: grader/ and grader/eval.json."""
    items = read_rubric([str(ctx.path("world", "preferences", "rubric.jsonl"))])
    train = [it for it in items if it.get("split", "train") == "train"]
    test = [it for it in items if it.get("split") == "test"]
    grader = LearnedGrader.train(train, seed=ctx.seed)
    grader.save(ctx.path("grader"), {"data": "world/preferences/rubric.jsonl"})
    result = {"learned": evaluate_grader(grader, test), "regex": evaluate_grader(RegexGrader(), test),
              "learned_inferring_type": evaluate_grader(grader, test, infer_type=True)}
    atomic_write_text(ctx.path("grader", "eval.json"), json.dumps(result, indent=2))
    return {k: result[k]["accuracy"] for k in ("learned", "regex")}


def stage_rm(ctx: RunContext) -> dict:
    """The reward models: the rubric grader (a small classifier on the world's labelled responses, scored
    beside the policy's regular expressions) and the preference reward model on the SFT model."""
    w = ctx.path("world", "preferences")
    grader = train_rubric_grader(ctx)
    cfg = RMConfig(sft=str(ctx.path("sft")), data=[str(w / "preferences.jsonl")], out=str(ctx.path("rm")),
                   max_steps=ctx.settings.rm_steps, seed=ctx.seed, device=ctx.device, quiet=ctx.quiet,
                   resume=ctx.path("rm", "resume").exists())
    test = run_rm(cfg)["eval"]["test"]
    return {"grader_accuracy": grader, "rm_pair_accuracy": test.get("pair_accuracy"),
            "rm_by_kind": {k: v["accuracy"] for k, v in test.get("by_kind", {}).items()}}


def stage_rl(ctx: RunContext) -> dict:
    s = ctx.settings
    cfg = RLConfig(sft=str(ctx.path("sft")), rm=str(ctx.path("rm")), prompts=[str(ctx.path("world", "rl", "prompts.jsonl"))],
                   out=str(ctx.path("rl")), grader=str(ctx.path("grader")),
                   rubric=[str(ctx.path("world", "preferences", "rubric.jsonl"))], max_steps=s.rl_steps,
                   prompts_per_step=s.rl_prompts_per_step, group_size=s.rl_group_size, lr=s.rl_lr, beta=s.rl_beta,
                   max_new_tokens=s.rl_max_new_tokens, seed=ctx.seed, device=ctx.device, quiet=ctx.quiet,
                   resume=ctx.path("rl", "resume").exists())
    summary = run_rl(cfg)
    return {"steps": summary["steps"], "rbrm_fit": summary.get("rbrm_fit")}


def stage_evals(ctx: RunContext) -> dict:
    device = ctx.eval_device
    out = {}
    for stage in ("base", "sft", "rl"):
        if ctx.path(stage, "model.safetensors").exists():
            extra = [t for t in ctx.extra_evals if stage != "base" or t[0].startswith("toxicity")]
            res = run_suite(ctx.path(stage), ctx.path("world"), ctx.path("evals", stage), stage, device=device,
                            extra_tasks=extra)
            out[stage] = {task: {k: v for k, v in s.items() if isinstance(v, int | float)} for task, s in res.items()}
    return out


def stage_report(ctx: RunContext) -> dict:
    return {"report": str(build_report(ctx.out))}


STAGES: list[tuple[str, Callable[[RunContext], dict], str]] = [
    ("world", stage_world, "generate the built-in world"),
    ("tokenizer", stage_tokenizer, "train the BPE tokenizer"),
    ("scaling", stage_scaling, "small runs, fit L(C), predict the final loss"),
    ("pretrain", stage_pretrain, "pretrain the base model"),
    ("sft", stage_sft, "supervised fine-tuning, with a vision tower trained from scratch"),
    ("rm", stage_rm, "the rubric grader and the reward model"),
    ("rl", stage_rl, "RL from the reward model and rule-based rewards"),
    ("evals", stage_evals, "evaluate base, SFT and RL"),
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


def _open_state(out: Path, preset: str, seed: int, settings: RunPreset) -> dict:
    """run.json of this run folder, checked against what this invocation asks for."""
    state = _load_state(out / "run.json")
    if state and (state.get("preset"), state.get("seed")) != (preset, seed):
        raise UserError(f"{out} holds a run with preset {state.get('preset')} and seed {state.get('seed')}; "
                        "use another --out")
    state.setdefault("preset", preset)
    state.setdefault("seed", seed)
    state.setdefault("stages", {})
    state["hardware"] = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version()}
    if "settings" in state:
        try:
            started = replace(settings, **state["settings"])
        except TypeError:
            started = None
        if started != settings:
            raise UserError(f"{out} was started with other settings ({state['settings']}); use another --out")
    state["settings"] = asdict(settings)
    return state


def run(out: str | Path, preset: str = "tiny", seed: int = 0, device: str = "auto", quiet: bool = False,
        only: list[str] | None = None, skip: list[str] | None = None, overrides: dict | None = None,
        extra_evals: list[tuple[str, Path]] | None = None) -> dict:
    if preset not in RUN_PRESETS:
        raise UserError(f"unknown run preset {preset!r} (choose from {', '.join(RUN_PRESETS)})")
    settings = RUN_PRESETS[preset].with_overrides(overrides)
    names = [s[0] for s in STAGES]
    for bad in (only or []) + (skip or []):
        if bad not in names:
            raise UserError(f"unknown stage {bad!r} (stages: {', '.join(names)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _open_state(out, preset, seed, settings)
    ctx = RunContext(out, preset, seed, device, quiet, settings, state, list(extra_evals or []))
    t_all = time.time()
    for i, (name, fn, what) in enumerate(STAGES, 1):
        if (only and name not in only) or (skip and name in skip):
            continue
        if state["stages"].get(name, {}).get("status") == "done" and not only:
            _say(f"[{i}/{len(STAGES)}] {name}: done earlier ({state['stages'][name]['wall_s']:.0f}s), skipped")
            continue
        _say(f"[{i}/{len(STAGES)}] {name}: {what} ...")
        t0 = time.time()
        result = fn(ctx)
        wall = time.time() - t0
        state["stages"][name] = {"status": "done", "wall_s": round(wall, 2), **result}
        atomic_write_text(out / "run.json", json.dumps(state, indent=2))
        _say(f"[{i}/{len(STAGES)}] {name}: finished in {wall:.0f}s")
    total = sum(s.get("wall_s", 0) for s in state["stages"].values())
    state["total_wall_s"] = round(total, 2)
    atomic_write_text(out / "run.json", json.dumps(state, indent=2))
    _say(f"run complete in {time.time() - t_all:.0f}s this time ({total:.0f}s of stage time in all): "
         f"{out / 'report' / 'index.html'}")
    return state


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline, end to end",
                       description="world → tokenizer → scaling → pretrain → SFT → RM → RL → evals → report. Finished "
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
    p.add_argument("--rm-steps", type=int, default=None, help="override the preset's reward model steps")
    p.add_argument("--rl-steps", type=int, default=None, help="override the preset's RL steps")
    p.add_argument("--pretrain-optimizer", choices=["adamw", "muon"], default=None,
                   help="override the preset's pretraining optimizer (the scaling ladder follows it)")
    p.add_argument("--xstest", metavar="PATH", default=None,
                   help="also evaluate over-refusal on XSTest (its xstest_prompts.csv, or the folder holding it)")
    p.add_argument("--rtp", metavar="PATH", default=None,
                   help="also evaluate toxicity on RealToxicityPrompts JSONL (a file or a folder of them)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cli)


def _cli(a) -> int:
    if a.threads:
        torch.set_num_threads(a.threads)
    overrides = {"world_scale": a.world_scale, "pretrain_steps": a.pretrain_steps, "sft_steps": a.sft_steps,
                 "pretrain_optimizer": a.pretrain_optimizer, "rm_steps": a.rm_steps, "rl_steps": a.rl_steps}
    extra = [(name, Path(path)) for name, path in (("xstest", a.xstest), ("toxicity_rtp", a.rtp)) if path]
    for name, path in extra:
        if not path.exists():
            raise UserError(f"--{'xstest' if name == 'xstest' else 'rtp'}: {path} not found")
    run(a.out, a.preset, a.seed, a.device, a.quiet, a.only, a.skip, overrides, extra)
    return 0
