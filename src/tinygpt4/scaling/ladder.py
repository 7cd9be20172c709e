"""Predictable scaling: train a ladder of small models the way the target will be trained, fit
L(C) = a*C^b + c to their final validation losses, and predict the target's final loss (and a capability
metric) before the target trains.

Each rung is the target's own PretrainConfig shrunk along one dial, width, with its batch size and learning
rate following its size, so that the family runs smoothly into the target's settings. The prediction is
written once and never rewritten: it is judged against the target's outcome, recorded beside it later.
docs/scaling.md describes the rules, the files this module writes and the measurements behind each rule.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache, partial
from pathlib import Path

import numpy as np
import torch

from tinygpt4.config import ModelConfig
from tinygpt4.data.pretrain_data import build_token_cache
from tinygpt4.errors import UserError
from tinygpt4.evals.capability import CAPABILITY_NAME, capability_metric, load_exam_items
from tinygpt4.model.gpt import GPT
from tinygpt4.runtime import atomic_write_text, resolve_device
from tinygpt4.scaling.figures import plot_scaling
from tinygpt4.scaling.fit import bootstrap_power_law, fit_power_law
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.pretrain import PretrainConfig, pretrain_defaults, resolve_model_config, run_pretrain

# The model presets meant for GPUs (the others, tiny and bare depths, are CPU presets): their rungs may use
# 1/1,000 of the target's compute instead of 1/100. Only this module asks which presets those are.
GPU_PRESETS = frozenset({"d12", "d20", "d26"})
LR_EXPONENT = 0.5
# Muon's block updates have a fixed RMS whatever the width, so its narrow rungs need the full 1/width of muP
# (measured against exponent 0.5 in docs/scaling.md).
MUON_LR_EXPONENT = 1.0
BATCH_EXPONENT = 0.75
BATCH_LR_EXPONENT = 0.5
MAX_CPU_WORKERS = 4
PARAM_COUNT = "total"


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _read_json(path: Path) -> dict:
    """A file the ladder cannot go on without: its plan, its prediction, a rung's job or result. Unlike the
    report, which leaves out what it cannot read, a missing or unreadable file here is a UserError naming
    the path (rerun the step that writes it, or point at the right folder)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:  # json.JSONDecodeError, or UnicodeDecodeError
        raise UserError(f"{path}: invalid JSON ({e})") from None


# ---- the target and the ladder's shapes ------------------------------------------------------------------

@dataclass
class Target:
    """What the target run will do, resolved from its PretrainConfig with the preset defaults filled in."""

    preset: str
    model: dict
    batch_size: int
    seq_len: int
    max_steps: int
    warmup_steps: int
    lr: float
    val_batches: int
    val_batch_size: int
    grad_accum: int
    non_embedding_params: int
    params: int
    flops_per_token: float
    tokens: int
    flops: float
    optimizer: str = "adamw"

    def tokens_per_param(self, count: str) -> float:
        return self.tokens / (self.params if count == "total" else self.non_embedding_params)


def model_cost(mc: ModelConfig) -> tuple[int, int, float]:
    """(non-embedding parameters, all parameters, training FLOPs per token) from the model's own accounting."""
    with torch.device("meta"):
        m = GPT(mc)
    return m.num_params(exclude_embedding=True), m.num_params(), float(m.flops_per_token(mc.seq_len))


def resolve_target(cfg: PretrainConfig, vocab_size: int) -> Target:
    """The target's resolved settings from a `tinygpt4.train.pretrain.PretrainConfig`."""
    defaults = pretrain_defaults(cfg.preset)
    mc = resolve_model_config(replace(cfg, model=replace(cfg.model) if cfg.model else None), vocab_size)
    mc = replace(mc, vision=None)
    batch = cfg.batch_size or defaults.batch_size
    steps = cfg.max_steps or defaults.max_steps
    n, total, fpt = model_cost(mc)
    tokens = steps * batch * cfg.grad_accum * mc.seq_len
    return Target(
        preset=str(cfg.preset), model=mc.to_dict(), batch_size=batch, seq_len=mc.seq_len, max_steps=steps,
        warmup_steps=cfg.warmup_steps, lr=cfg.lr or defaults.lr, val_batches=cfg.val_batches,
        val_batch_size=cfg.val_batch_size or batch,
        grad_accum=cfg.grad_accum, non_embedding_params=n, params=total, flops_per_token=fpt, tokens=tokens,
        flops=fpt * tokens, optimizer=cfg.optimizer or defaults.optimizer,
    )


def shape_for_width(target: ModelConfig, width: int) -> ModelConfig:
    """The target's shape at another width: same depth, vocabulary, sequence length, head size (capped by
    the width), KV-head ratio and MLP ratio. At the target's width this is the target's own shape."""
    head_dim = min(target.head_dim, width)
    n_head = max(1, width // head_dim)
    kv_ratio = target.n_kv_head / target.n_head
    n_kv = max(1, round(n_head * kv_ratio))
    while n_head % n_kv:
        n_kv -= 1
    mlp = max(4, int(round(width * target.mlp_hidden / target.n_embd / 4)) * 4)
    if width == target.n_embd:
        mlp = target.mlp_hidden
    return replace(target, n_embd=width, n_head=n_head, n_kv_head=n_kv, head_dim=head_dim, mlp_hidden=mlp,
                   vision=None)


@dataclass
class Rung:
    name: str
    model: dict
    non_embedding_params: int
    params: int
    flops_per_token: float
    batch_size: int
    max_steps: int
    warmup_steps: int
    val_batches: int
    val_batch_size: int
    lr: float
    tokens: int
    flops: float


@dataclass(frozen=True)
class RungRules:
    """How a rung's learning rate, batch size and tokens follow its size (docs/scaling.md):
    batch = target batch * (N / N_target)^batch_exponent,
    lr = target lr * (target width / width)^lr_exponent * (batch / target batch)^batch_lr_exponent,
    tokens = the target's tokens per parameter, parameters counted as param_count says ("total": all)."""

    lr_exponent: float = LR_EXPONENT
    batch_exponent: float = BATCH_EXPONENT
    batch_lr_exponent: float = BATCH_LR_EXPONENT
    param_count: str = PARAM_COUNT


def lr_exponent_for(optimizer: str) -> float:
    return MUON_LR_EXPONENT if optimizer == "muon" else LR_EXPONENT


def default_max_fraction(preset: str) -> float:
    """Each rung's compute is at most this fraction of the target's: 1/100 on CPU presets, 1/1,000 on GPU."""
    return 1e-3 if str(preset).lower() in GPU_PRESETS else 1e-2


def rung_for_width(target: Target, width: int, rules: RungRules) -> Rung:
    """The target's recipe at `width`, with batch size, learning rate and tokens set by `rules`."""
    tmc = ModelConfig.from_dict(target.model)
    seq = target.seq_len
    mc = shape_for_width(tmc, width)
    n, total, fpt = model_cost(mc)
    # any whole number of sequences: rounding to a coarser grid (powers of two) puts kinks in the
    # family's step counts, and the small rungs' step counts set the fitted slope
    want = target.batch_size * (n / target.non_embedding_params) ** rules.batch_exponent
    batch = max(1, round(want))
    ratio = target.tokens_per_param(rules.param_count)
    steps = max(1, round(ratio * (total if rules.param_count == "total" else n) / (batch * seq)))
    tokens = steps * batch * seq
    warmup = max(1, round(target.warmup_steps * steps / target.max_steps))
    lr = (target.lr * (tmc.n_embd / width) ** rules.lr_exponent
          * (batch / target.batch_size) ** rules.batch_lr_exponent)
    # validation uses the target's own batches, so every rung is scored on exactly its windows
    return Rung(name=f"w{width}", model=mc.to_dict(), non_embedding_params=n, params=total, flops_per_token=fpt,
                batch_size=batch, max_steps=steps, warmup_steps=warmup, val_batches=target.val_batches,
                val_batch_size=target.val_batch_size, lr=lr, tokens=tokens, flops=fpt * tokens)


def _widest_under(at: Callable[[int], Rung], limit: float, *, min_width: int, below: int) -> int | None:
    """The widest even width under `below` whose rung costs at most `limit` FLOPs (cost grows with width;
    rounding to whole steps can break that by a hair, hence the final walk down)."""
    lo, hi = min_width // 2, (below - 1) // 2  # in units of 2
    if lo > hi or at(2 * lo).flops > limit:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if at(2 * mid).flops <= limit else (lo, mid - 1)
    return 2 * lo


def _spaced_widths(at: Callable[[int], Rung], widest_under: Callable[[float], int | None], bottom: int,
                   top: int, n_rungs: int) -> list[int]:
    """bottom, top and, between them, the widths nearest to compute spaced geometrically."""
    chosen = {bottom, top}
    lo_c, hi_c = math.log(at(bottom).flops), math.log(at(top).flops)
    for i in range(1, n_rungs - 1):
        want = math.exp(lo_c + (hi_c - lo_c) * i / (n_rungs - 1))
        w = widest_under(want) or bottom
        # the nearer (in log compute) of the widths just under and just over the geometric target
        if w + 2 < top and abs(math.log(at(w + 2).flops / want)) < abs(math.log(at(w).flops / want)):
            w += 2
        chosen.add(w)
    return sorted(chosen)


def plan_ladder(target: Target, *, n_rungs: int = 6, span: float = 100.0, max_fraction: float | None = None,
                min_width: int = 2, lr_exponent: float | None = None,
                batch_exponent: float = BATCH_EXPONENT, param_count: str = PARAM_COUNT,
                batch_lr_exponent: float = BATCH_LR_EXPONENT) -> list[Rung]:
    """Rungs whose compute runs geometrically from max_fraction*C_target / span up to max_fraction*C_target.

    Widths are even (RoPE rotates pairs); each rung's tokens are tokens_per_param times its parameters
    (counted as param_count says), rounded to whole optimizer steps of batch_size sequences."""
    if n_rungs < 2:
        raise UserError("the ladder needs at least 2 rungs")
    frac = default_max_fraction(target.preset) if max_fraction is None else max_fraction
    rules = RungRules(lr_exponent=lr_exponent_for(target.optimizer) if lr_exponent is None else lr_exponent,
                      batch_exponent=batch_exponent, batch_lr_exponent=batch_lr_exponent, param_count=param_count)
    at = cache(partial(rung_for_width, target, rules=rules))  # each width's rung is built once
    widest_under = partial(_widest_under, at, min_width=min_width, below=target.model["n_embd"])
    cap = frac * target.flops
    top = widest_under(cap)
    if top is None:
        raise UserError(f"no model of width >= {min_width} fits in {frac:g} of the target's compute")
    bottom = widest_under(at(top).flops / span)
    if bottom is None:
        raise UserError(
            f"cannot span {span:g}x in compute under {frac:g} of the target's: the smallest rung "
            f"(width {min_width}) already uses {at(min_width).flops / cap:.3g} of the cap"
        )
    return [at(w) for w in _spaced_widths(at, widest_under, bottom, top, n_rungs)]


# ---- running it ------------------------------------------------------------------------------------------

@dataclass
class RungJob:
    """One training run of one rung: what a worker is given (as rung_job.json in its run folder)."""

    rung: Rung
    cfg: PretrainConfig
    exams: str | None = None  # an exam folder: also measure the capability metric
    keep: bool = False  # keep the weights
    threads: int | None = None  # torch threads while it trains

    def to_dict(self) -> dict:
        return {"rung": asdict(self.rung), "cfg": {**asdict(self.cfg), "model": self.cfg.model.to_dict()},
                "exams": self.exams, "keep": self.keep, "threads": self.threads}

    @classmethod
    def from_dict(cls, d: dict) -> RungJob:
        cfg = PretrainConfig(**{**d["cfg"], "model": ModelConfig.from_dict(d["cfg"]["model"])})
        return cls(rung=Rung(**d["rung"]), cfg=cfg, exams=d.get("exams"), keep=bool(d.get("keep")),
                   threads=d.get("threads"))


def rung_config(target_cfg: PretrainConfig, target: Target, rung: Rung, out: Path, *, seed: int,
                cache_dir: str) -> PretrainConfig:
    """The target's PretrainConfig as one run of `rung`: its shape, steps, batch and learning rate, the target's
    resolved preset, sequence length and optimizer, evaluated once at the end and never resumed."""
    return replace(
        target_cfg, data=list(target_cfg.data), out=str(out), preset=target.preset,
        model=ModelConfig.from_dict(rung.model), max_steps=rung.max_steps, batch_size=rung.batch_size,
        seq_len=target.seq_len, lr=rung.lr, warmup_steps=rung.warmup_steps, grad_accum=1,
        eval_every=rung.max_steps, save_every=0, val_batches=rung.val_batches, val_batch_size=rung.val_batch_size,
        resume=False, seed=seed, optimizer=target.optimizer,
        # compiling pays off over a long run, not over a rung of a few hundred steps
        compile="off" if target_cfg.compile == "auto" else target_cfg.compile,
        cache_dir=cache_dir, quiet=True, log_every=max(1, rung.max_steps // 20),
        extra={"stage": "scaling", "rung": rung.name},
    )


def run_ladder(target_cfg: PretrainConfig, scaling_dir, *, n_rungs: int = 6, span: float = 100.0,
               max_fraction: float | None = None, lr_exponent: float | None = None,
               batch_exponent: float = BATCH_EXPONENT, param_count: str = PARAM_COUNT,
               batch_lr_exponent: float = BATCH_LR_EXPONENT, n_boot: int = 200, seed: int = 0,
               exams: str | None = None, keep_checkpoints: bool = False, workers: int | None = None,
               seeds: int = 1, log=print) -> dict:
    """Train the ladder for the target described by `target_cfg`, fit, predict.

    With `seeds` > 1 every rung is trained that many times (seeds target_cfg.seed, +1, ...) and its point
    is the mean of the final losses (and of the capability metric): a small rung's loss moves by several
    percent with the seed alone, and the prediction extrapolates those points a hundredfold.

    Writes ladder.json, fit.json (with `predicted_final_loss`) and scaling.png into scaling_dir and returns
    fit.json's contents. Refuses to run when scaling_dir already holds a prediction: a prediction is made
    once, before the target trains, and is never rewritten.
    """
    if seeds < 1:
        raise UserError(f"seeds per rung must be at least 1, got {seeds}")
    out = Path(scaling_dir)
    if (out / "fit.json").exists():
        raise UserError(f"{out / 'fit.json'} already holds a prediction; it is never rewritten "
                        "(use a fresh folder for a new prediction)")
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.load(target_cfg.tokenizer)
    target = resolve_target(target_cfg, tok.vocab_size)
    rungs = plan_ladder(target, n_rungs=n_rungs, span=span, max_fraction=max_fraction, lr_exponent=lr_exponent,
                        batch_exponent=batch_exponent, param_count=param_count, batch_lr_exponent=batch_lr_exponent)
    cache_dir = target_cfg.cache_dir or str(Path(target_cfg.out).parent / ".cache" / "tokens")
    plan = {
        "target": asdict(target),
        "param_count": param_count,
        "tokens_per_param": target.tokens_per_param(param_count),
        "max_fraction": default_max_fraction(target.preset) if max_fraction is None else max_fraction,
        "rungs": [asdict(r) for r in rungs],
    }
    _write_json(out / "ladder.json", plan)
    if exams:
        load_exam_items(exams)  # fail on a bad folder before any training
    on_cpu = resolve_device(target_cfg.device).type == "cpu"
    if workers is None:
        workers = min(os.cpu_count() or 1, len(rungs), MAX_CPU_WORKERS) if on_cpu else 1
    jobs = []
    for r in rungs:
        for k in range(seeds):
            run_dir = out / "runs" / (r.name if seeds == 1 else f"{r.name}-s{k}")
            cfg = rung_config(target_cfg, target, r, run_dir, seed=target_cfg.seed + k, cache_dir=cache_dir)
            jobs.append(RungJob(r, cfg, exams=exams, keep=keep_checkpoints, threads=1 if on_cpu else None))
    # Tokenize once, here, so parallel workers find the cache instead of each building it.
    build_token_cache(target_cfg.data, tok, cache_dir, skip_bad=target_cfg.skip_bad)
    _train_rungs(jobs, plan, rungs, out / "ladder.json", seeds=seeds, workers=workers, log=log)
    return predict(out, n_boot=n_boot, seed=seed)


def _train_rungs(jobs: list[RungJob], plan: dict, rungs: list[Rung], ladder_path: Path, *, seeds: int,
                 workers: int, log) -> None:
    """Train every job, largest first, and rewrite the plan at `ladder_path` as each rung's seeds finish."""
    t0 = time.time()
    runs: dict[str, list[dict]] = {}
    done: dict[str, dict] = {}

    def finished(rec: dict) -> None:
        runs.setdefault(rec["name"], []).append(rec)
        log(f"scale: {rec['name']} (seed {rec['seed']}) N={rec['non_embedding_params']:,} C={rec['flops']:.3g} "
            f"loss={rec['final_val_loss']:.4f} ({rec['wall_s']:.1f}s)")
        if len(runs[rec["name"]]) == seeds:
            done[rec["name"]] = _mean_of_seeds(runs[rec["name"]])
            plan["rungs"] = [done.get(r.name, asdict(r)) for r in rungs]
            _write_json(ladder_path, plan)

    # Largest first, so parallel workers finish together.
    order = sorted(jobs, key=lambda j: -j.rung.flops)
    if workers > 1:
        _run_in_subprocesses(order, workers, finished)
    else:
        for j in order:
            finished(train_rung(j))
    plan["wall_s"] = round(time.time() - t0, 2)
    plan["workers"] = workers
    _write_json(ladder_path, plan)


def _mean_of_seeds(recs: list[dict]) -> dict:
    """One rung's point from its runs: the mean final loss (and capability), with each seed's kept."""
    recs = sorted(recs, key=lambda r: r["seed"])
    rec = {k: v for k, v in recs[0].items() if k != "seed"}
    rec["final_val_loss"] = float(np.mean([r["final_val_loss"] for r in recs]))
    rec["wall_s"] = round(sum(r["wall_s"] for r in recs), 2)
    if len(recs) > 1:
        rec["seed_losses"] = {str(r["seed"]): r["final_val_loss"] for r in recs}
    if all("capability" in r for r in recs):
        rec["capability"] = {**recs[0]["capability"],
                             **{k: float(np.mean([r["capability"][k] for r in recs]))
                                for k in ("value", "choice_value", "accuracy")}}
    return rec


def _deal(jobs: list[RungJob], workers: int) -> list[list[RungJob]]:
    """Jobs (largest first) dealt to `workers` shares, each to the share with the fewest tokens so far."""
    shares: list[list[RungJob]] = [[] for _ in range(workers)]
    load = [0] * workers
    for job in jobs:
        i = load.index(min(load))
        shares[i].append(job)
        load[i] += job.rung.tokens
    return [s for s in shares if s]


def _run_in_subprocesses(jobs: list[RungJob], workers: int, finished: Callable[[dict], None]) -> None:
    """Train rungs in `workers` fresh interpreters (`python -m tinygpt4.scaling.ladder JOB...`), one thread
    each, every worker taking its share of the rungs in turn. Fresh processes rather than fork: a forked
    child of a process whose OpenMP pool has run can hang, and spawn-based pools re-import the caller's
    __main__."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = []
    pending: dict[Path, RungJob] = {}
    try:
        for k, share in enumerate(_deal(jobs, workers)):
            paths = []
            for job in share:
                run_dir = Path(job.cfg.out)
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "rung.json").unlink(missing_ok=True)
                _write_json(run_dir / "rung_job.json", job.to_dict())
                paths.append(str(run_dir / "rung_job.json"))
                pending[run_dir] = job
            log_path = Path(share[0].cfg.out).parent / f"worker{k}.log"
            with open(log_path, "w") as err:
                proc = subprocess.Popen([sys.executable, "-m", "tinygpt4.scaling.ladder", *paths],
                                        stdout=subprocess.DEVNULL, stderr=err, env=env)
            procs.append((proc, log_path))
        while pending:
            time.sleep(0.25)
            for run_dir in [d for d in pending if (d / "rung.json").exists()]:
                pending.pop(run_dir)
                finished(_read_json(run_dir / "rung.json"))
            for proc, log_path in procs:
                if proc.poll() not in (None, 0):
                    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                    raise RuntimeError(f"a scaling worker failed (exit {proc.returncode}): " + " | ".join(tail))
            if pending and all(proc.poll() is not None for proc, _ in procs):
                time.sleep(0.5)  # a last rung.json may land just after its worker exits
                if not all((d / "rung.json").exists() for d in pending):
                    raise RuntimeError(f"scaling workers exited without finishing {sorted(d.name for d in pending)}")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def train_rung(job: RungJob) -> dict:
    """Train one rung (in this process or a worker), write its rung.json and return that record."""
    cfg = job.cfg
    threads_before = torch.get_num_threads()
    if job.threads:
        # Rungs are narrow: a second thread buys little, and costs much when the cores are shared.
        torch.set_num_threads(job.threads)
    try:
        s = run_pretrain(cfg)
        rec = {**asdict(job.rung), "tokens": s["tokens"], "flops": s["flops"], "wall_s": s["wall_s"],
               "final_val_loss": s["final_val_loss"], "seed": cfg.seed}
        if job.exams:
            rec["capability"] = capability_metric(cfg.out, load_exam_items(job.exams), device=cfg.device)
    finally:
        torch.set_num_threads(threads_before)
    if not job.keep:
        for name in ("model.safetensors", "optimizer.safetensors"):
            (Path(cfg.out) / name).unlink(missing_ok=True)
    _write_json(Path(cfg.out) / "rung.json", rec)
    return rec


# ---- the prediction and the outcome ----------------------------------------------------------------------

def _draw(scaling_dir: Path) -> None:
    """Redraw scaling.png. The figure is a convenience: without a working matplotlib the prediction and the
    outcome, already written, stand without it."""
    try:
        plot_scaling(scaling_dir)
    except ImportError:
        pass


def predict(scaling_dir, *, n_boot: int = 200, seed: int = 0, level: float = 0.9) -> dict:
    """Fit ladder.json's points, write fit.json (never overwriting one) and the figure; return fit.json."""
    out = Path(scaling_dir)
    path = out / "fit.json"
    if path.exists():
        raise UserError(f"{path} already holds a prediction; it is never rewritten")
    plan = _read_json(out / "ladder.json")
    rungs = [r for r in plan["rungs"] if r.get("final_val_loss") is not None]
    if len(rungs) < 3:
        raise UserError(f"{out / 'ladder.json'}: need at least 3 finished rungs to fit, have {len(rungs)}")
    compute = np.array([r["flops"] for r in rungs], dtype=float)
    loss = np.array([r["final_val_loss"] for r in rungs], dtype=float)
    c_target = float(plan["target"]["flops"])
    boot = bootstrap_power_law(compute, loss, target_compute=c_target, n_boot=n_boot, seed=seed, level=level)
    fit = boot["fit"]
    res = {
        "law": "L(C) = a * (C / c0)^b + c",
        "params": fit.to_dict(),
        "intervals": {k: v for k, v in boot["intervals"].items() if k != "prediction"},
        "level": level,
        "n_boot": n_boot,
        "target_preset": plan["target"]["preset"],
        "target_flops": c_target,
        "target_tokens": plan["target"]["tokens"],
        "target_non_embedding_params": plan["target"]["non_embedding_params"],
        "compute_span": float(compute.max() / compute.min()),
        "max_rung_fraction": float(compute.max() / c_target),
        "points": [{"name": r["name"], "flops": r["flops"], "final_val_loss": r["final_val_loss"],
                    "non_embedding_params": r["non_embedding_params"], "tokens": r["tokens"]} for r in rungs],
        "predicted_final_loss": boot["prediction"],
        "predicted_final_loss_interval": boot["intervals"]["prediction"],
        "ladder_wall_s": plan.get("wall_s"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    caps = [r.get("capability") for r in rungs]
    if all(c is not None for c in caps):
        res["capability"] = predict_capability(compute, np.array([c["value"] for c in caps]), c_target,
                                               level=level, seed=seed)
    _write_json(path, res)
    _draw(out)
    return res


def record_outcome(scaling_dir, actual_final_loss: float, actual_metric: float | dict | None = None) -> dict:
    """After the target trained: write outcome.json beside the (unchanged) prediction and redraw the figure.

    `actual_metric` is the target's capability metric: its value, or the dict `capability_metric` returns
    (then kept whole as `actual_capability`)."""
    out = Path(scaling_dir)
    fit = _read_json(out / "fit.json")
    pred = float(fit["predicted_final_loss"])
    actual = float(actual_final_loss)
    lo, hi = fit["predicted_final_loss_interval"]
    res = {
        "predicted_final_loss": pred,
        "predicted_final_loss_interval": [lo, hi],
        "actual_final_loss": actual,
        "relative_error": (pred - actual) / actual,
        "abs_relative_error": abs(pred - actual) / actual,
        "within_interval": bool(lo <= actual <= hi),
    }
    cap = fit.get("capability")
    if isinstance(actual_metric, dict):
        res["actual_capability"] = actual_metric
        actual_metric = actual_metric["value"]
    if actual_metric is not None:
        res["actual_metric"] = float(actual_metric)
        if cap:
            res["metric_name"] = cap["name"]
            res["predicted_metric"] = cap["predicted"]
            res["predicted_metric_interval"] = cap["interval"]
            res["metric_relative_error"] = (cap["predicted"] - float(actual_metric)) / float(actual_metric)
    _write_json(out / "outcome.json", res)
    _draw(out)
    return res


def predict_capability(compute: np.ndarray, metric: np.ndarray, target_compute: float, *, level: float = 0.9,
                       seed: int = 0, n_boot: int = 200) -> dict:
    """Predict the target's capability metric (tinygpt4.evals.capability) from the ladder as the GPT-4 report
    does: a power law in compute with no offset, -E[log pass_rate](C) = alpha * C^-k, fitted as a line in
    log-log space.

    No offset because a perfect model passes every question (the metric's floor is 0), and the law is
    fitted to compute directly, not through the loss, so it needs no prediction of the loss. The interval
    refits on rungs resampled with replacement."""
    x, y = np.log(compute / compute.min()), np.log(metric)
    xt = math.log(target_compute / compute.min())
    slope, icpt = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed + 1)
    preds = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        if np.unique(x[idx]).size < 2:
            continue
        s, i = np.polyfit(x[idx], y[idx], 1)
        preds.append(math.exp(i + s * xt))
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {
        "name": CAPABILITY_NAME,
        "method": "power law in compute without offset, metric = alpha * (C / c0)^-k, least squares in log-log",
        "alpha": float(math.exp(icpt)),
        "k": float(-slope),
        "c0": float(compute.min()),
        "points": [{"flops": float(c), "metric": float(m)} for c, m in zip(compute, metric)],
        "predicted": float(math.exp(icpt + slope * xt)),
        "interval": [float(np.percentile(preds, lo_q)), float(np.percentile(preds, hi_q))],
    }


def clean_runs(scaling_dir) -> None:
    shutil.rmtree(Path(scaling_dir) / "runs", ignore_errors=True)


__all__ = [
    "Rung",
    "RungJob",
    "RungRules",
    "Target",
    "fit_power_law",
    "plan_ladder",
    "predict",
    "predict_capability",
    "record_outcome",
    "resolve_target",
    "run_ladder",
]


if __name__ == "__main__":  # a ladder worker: python -m tinygpt4.scaling.ladder JOB.json...
    for job_path in sys.argv[1:]:
        train_rung(RungJob.from_dict(_read_json(Path(job_path))))
