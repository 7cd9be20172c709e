"""The training loop every stage shares: AdamW, warmup + cosine decay, gradient accumulation, clipping,
bf16 autocast, optional torch.compile, DDP under torchrun, log.jsonl, periodic validation, atomic
checkpoints and exact resume (model, optimizer, schedule, RNG, data position)."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from tinygpt4.checkpoint import load_resume_state, save_model, save_resume_state
from tinygpt4.runtime import (
    Dist,
    atomic_write_text,
    autocast,
    compute_dtype,
    deterministic_algorithms,
    hardware_name,
)
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.muon import MuonAdamW, is_hidden_matrix


class BatchSource(Protocol):
    """Yields keyword batches for `model(**batch)` (which returns the loss); its position is restorable."""

    def next(self) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    optimizer: str = "adamw"  # adamw | muon (Muon for the blocks' matrices, AdamW for the rest)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_every: int = 100
    save_every: int = 0  # 0: save only at the end
    log_every: int = 10
    dtype: str = "auto"  # auto | bf16 | fp32
    compile: str = "auto"  # auto (see compile_mode) | on | off
    lr_mult: dict = field(default_factory=dict)  # parameter-name prefix -> learning-rate multiplier
    seed: int = 0
    device: str = "auto"
    quiet: bool = False


# ---- optimizer and schedule -------------------------------------------------------------------------------

def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; matrices decay, vectors (norms) and embeddings do not. Parameters whose names start with a
    prefix in cfg.lr_mult train at that multiple of the schedule's rate (a tower trained from scratch
    beside a pretrained decoder needs larger steps than the decoder can take without forgetting)."""
    if cfg.optimizer not in ("adamw", "muon"):
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (choose adamw or muon)")
    by_group: dict[tuple[bool, bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        mult = next((m for prefix, m in cfg.lr_mult.items() if name.startswith(prefix)), 1.0)
        muon = cfg.optimizer == "muon" and is_hidden_matrix(name, p)
        by_group.setdefault((p.dim() >= 2 and "embed" not in name, muon, mult), []).append(p)
    groups = [{"params": ps, "weight_decay": cfg.weight_decay if decays else 0.0, "lr_mult": mult, "muon": muon}
              for (decays, muon, mult), ps in sorted(by_group.items(), key=lambda kv: (not kv[0][0], *kv[0][1:]))]
    # The fused kernel exists for CUDA and CPU, and steps much faster than the per-tensor loop or foreach on
    # both (docs/training-notes.md).
    fused = device.type in ("cuda", "cpu")
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "muon":
        ns_dtype = compute_dtype(device, cfg.dtype, training=True)
        return MuonAdamW(groups, lr=cfg.lr, betas=betas, eps=1e-8, ns_dtype=ns_dtype, fused=fused)
    for g in groups:
        del g["muon"]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=1e-8, fused=fused)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_frac·lr. A pure function of the step, so resume needs no
    scheduler state."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    coeff = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * coeff)


# ---- the loop ---------------------------------------------------------------------------------------------

class JsonlLog:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """After a resume, drop lines logged past the checkpoint (those steps run again)."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        atomic_write_text(self.path, "".join(x + "\n" for x in keep))

    def write(self, rec: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")


CPU_COMPILE_MIN_STEPS = 200


def compile_mode(setting: str, model, device: torch.device, steps: int) -> str | None:
    """What to compile: "model" (the whole forward), "decoder" (a multimodal model's text decoder only) or
    None. "on"/"off" as asked; "auto" compiles on CUDA, and on CPU only where it pays: inductor's C++
    kernels take a while to build (cold cache) and then train faster, so only a long run of fixed shapes
    (CPU_COMPILE_MIN_STEPS or more) gains. A multimodal batch has a different number of images every step,
    so on CPU only its decoder is compiled (its inputs are [B, T, D] embeddings, the same shape every step)
    and the vision tower stays eager. Without a C++ compiler there is nothing to build with. What it costs
    and gains is in docs/training-notes.md."""
    if setting == "off":
        return None
    multimodal = getattr(getattr(model, "config", None), "vision", None) is not None
    if setting == "on" or device.type == "cuda":
        return "decoder" if multimodal and device.type == "cpu" else "model"
    has_cxx = any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
    if device.type != "cpu" or steps < CPU_COMPILE_MIN_STEPS or not has_cxx:
        return None
    return "decoder" if multimodal else "model"


def train(
    model: torch.nn.Module,
    batches: BatchSource,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    tokenizer: Tokenizer | None = None,
    eval_fn: Callable[[torch.nn.Module], dict] | None = None,
    resume: bool = False,
    extra_config: dict | None = None,
    summary_extra: dict | None = None,
    dist_info: Dist | None = None,
    flops_per_token: float | None = None,
    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None,
) -> dict:
    """Train `model` (already on its device) and write a checkpoint folder. Returns the run summary.

    The loss of a batch is `model(**batch)`, or `loss_fn(model, batch)` for a stage whose objective is not
    the model's own (a reward model's pairwise loss, RL's policy gradient): the checkpoint is then still
    the model's own weights, which every other command loads."""
    run = _Run(model, batches, cfg, Path(out_dir), tokenizer=tokenizer, eval_fn=eval_fn,
               extra_config=extra_config, dist_info=dist_info or Dist(), flops_per_token=flops_per_token,
               loss_fn=loss_fn)
    run.start(resume)
    run.wrap()
    run.loop()
    return run.finish(summary_extra)


class _Run:
    """One call of `train`: the model, its optimizer and the position (step, tokens, wall time) that the
    steps, the log and the checkpoints share."""

    def __init__(self, model: torch.nn.Module, batches: BatchSource, cfg: TrainConfig, out: Path, *,
                 tokenizer: Tokenizer | None, eval_fn: Callable[[torch.nn.Module], dict] | None,
                 extra_config: dict | None, dist_info: Dist, flops_per_token: float | None,
                 loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor] | None = None):
        self.model, self.batches, self.cfg, self.out, self.d = model, batches, cfg, out, dist_info
        self.loss_fn = loss_fn
        self.tokenizer, self.eval_fn, self.extra_config = tokenizer, eval_fn, extra_config
        self.flops_per_token = flops_per_token
        if self.d.main:
            out.mkdir(parents=True, exist_ok=True)
        self.device = next(model.parameters()).device
        self.dtype = compute_dtype(self.device, cfg.dtype, training=True)
        self.optimizer = make_optimizer(model, cfg, self.device)
        self.log = JsonlLog(out / "log.jsonl", self.d.main)
        self.step, self.tokens_seen, self.wall_before = 0, 0, 0.0
        self.fwd, self.mode = model, None
        self.last_val: dict = {}
        self.t0 = self.window_t = time.time()
        self.window_tok = 0

    def start(self, resume: bool) -> None:
        """Continue from the checkpoint in the folder (when asked and there is one), or start a fresh log."""
        log_path = self.out / "log.jsonl"
        if resume:
            state = load_resume_state(self.out, self.model, self.optimizer)
            if state is not None:
                self.step, self.tokens_seen = state["step"], state["tokens"]
                self.wall_before = state.get("wall_s", 0.0)
                self.batches.load_state_dict(state["data"])
                self.log.truncate_after(self.step)
        elif self.d.main and log_path.exists():
            log_path.unlink()

    def wrap(self) -> None:
        """Compile what compile_mode picks for the steps left, and wrap the forward in DDP under torchrun."""
        model, device = self.model, self.device
        self.mode = compile_mode(self.cfg.compile, model, device, self.cfg.max_steps - self.step)
        if self.mode == "model":
            self.fwd = torch.compile(model)
        elif self.mode == "decoder":
            model.compile_decoder()
        if self.d.world_size > 1:
            self.fwd = DDP(self.fwd, device_ids=[device.index] if device.type == "cuda" else None)

    def loop(self) -> None:
        """Optimizer steps up to cfg.max_steps, logging, validating and checkpointing on the way."""
        cfg = self.cfg
        self.model.train()
        self.t0 = time.time()
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=cfg.quiet or not self.d.main,
                   dynamic_ncols=True, unit="step", desc=self.out.name)
        self.window_t, self.window_tok = time.time(), 0
        # CPU only: compiled CUDA runs also differ in the last bits, but deterministic mode there needs
        # CUBLAS_WORKSPACE_CONFIG set before CUDA starts, and slower kernels
        with deterministic_algorithms(self.mode is not None and self.device.type == "cpu"):
            while self.step < cfg.max_steps:
                lr = lr_at(self.step, cfg)
                loss_sum, gnorm = self.optimizer_step(lr)
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps or self.step == 1:
                    self.log_step(lr, loss_sum, gnorm, bar)
                bar.update(1)
                last = self.step == cfg.max_steps
                if self.eval_fn is not None and (self.step % cfg.eval_every == 0 or last):
                    self.last_val = self.evaluate()
                    self.log.write({"step": self.step, **self.last_val})
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                    self.save()
        bar.close()

    def optimizer_step(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One step at learning rate lr over cfg.grad_accum micro-batches; returns the loss (summed over the
        micro-batches, still on the device) and the gradient norm before clipping."""
        cfg, d, device = self.cfg, self.d, self.device
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        loss_sum = torch.zeros((), device=device)  # read back only when logged: .item() waits for the GPU
        for micro in range(cfg.grad_accum):
            batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
                     for k, v in self.batches.next().items()}
            sync = micro == cfg.grad_accum - 1 or d.world_size == 1
            ctx = self.fwd.no_sync() if (d.world_size > 1 and not sync) else nullcontext()
            with ctx, autocast(device, self.dtype):
                loss = (self.fwd(**batch) if self.loss_fn is None else self.loss_fn(self.fwd, batch))
                loss = loss / cfg.grad_accum
            loss.backward()
            loss_sum += loss.detach()
            n_tok = _batch_tokens(batch) * d.world_size
            self.tokens_seen += n_tok
            self.window_tok += n_tok
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_sum, gnorm

    def log_step(self, lr: float, loss_sum: torch.Tensor, gnorm: torch.Tensor, bar: tqdm) -> None:
        """A log.jsonl line for this step (loss averaged over the ranks) and the progress bar's figures."""
        if self.d.world_size > 1:  # every rank logs at the same steps, so all of them join this
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        logged_loss = loss_sum.item()
        now = time.time()
        tps = self.window_tok / max(now - self.window_t, 1e-9)
        self.window_t, self.window_tok = now, 0
        rec = {"step": self.step, "loss": round(logged_loss, 5), "lr": lr,
               "grad_norm": round(float(gnorm), 4), "tokens": self.tokens_seen, "tok_per_s": round(tps, 1),
               "elapsed_s": round(self.wall_before + now - self.t0, 2)}
        if self.flops_per_token:
            rec["flops_per_s"] = tps * self.flops_per_token
        self.log.write(rec)
        bar.set_postfix(loss=f"{logged_loss:.3f}", tok_s=f"{tps:,.0f}", **_short(self.last_val))

    def evaluate(self) -> dict:
        if self.eval_fn is None:
            return {}
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.dtype):
            res = self.eval_fn(self.model)
        self.model.train()
        return res

    def save(self) -> None:
        if not self.d.main:
            return
        save_model(self.out, self.model, self.tokenizer, self.extra_config)
        save_resume_state(self.out, self.model, self.optimizer, {
            "step": self.step, "tokens": self.tokens_seen,
            "wall_s": self.wall_before + (time.time() - self.t0),
            "data": self.batches.state_dict(), "train_config": asdict(self.cfg),
        })

    def finish(self, summary_extra: dict | None) -> dict:
        """Give back the uncompiled decoder, validate if that never happened, save, write summary.json."""
        if self.mode == "decoder":
            self.model.compile_decoder(False)  # the caller gets back the model it passed in
        if self.eval_fn is not None and not self.last_val:
            self.last_val = self.evaluate()
        wall = self.wall_before + time.time() - self.t0
        self.save()
        summary = {
            "params": sum(p.numel() for p in self.model.parameters()),
            "tokens": self.tokens_seen,
            "flops": (self.flops_per_token or 0) * self.tokens_seen,
            "wall_s": round(wall, 2),
            "steps": self.step,
            "final_val_loss": self.last_val.get("val_loss"),
            "final_val_bpb": self.last_val.get("val_bpb"),
            "device": hardware_name(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "optimizer": self.cfg.optimizer,
            "world_size": self.d.world_size,
            **(summary_extra or {}),
        }
        if self.d.main:
            atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary


def _batch_tokens(batch: dict) -> int:
    """Tokens a batch trains on, for throughput: its targets' positions, else its inputs'."""
    for key in ("targets", "idx", "input_ids"):
        if torch.is_tensor(batch.get(key)):
            return int(batch[key].numel())
    return 0


def _short(val: dict) -> dict:
    return {k: f"{v:.3f}" for k, v in val.items() if k == "val_loss" and isinstance(v, float)}
