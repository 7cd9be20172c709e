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
    # The fused kernel exists for CUDA and CPU; on a 2-core CPU it steps a tiny-preset VLM's 8.9 M
    # parameters in 10 ms where the per-tensor loop takes 44 ms (and foreach 50 ms).
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
    kernels cost about half a minute to a minute to build (cold cache) and then train a small text model
    1.6-1.8x faster, so a long run of fixed shapes gains. A multimodal batch has a different number of
    images every step, so on CPU only its decoder is compiled (its inputs are [B, T, D] embeddings, the same
    shape every step; 1.2-1.35x on a tiny-preset SFT step) and the vision tower stays eager. Without a C++
    compiler there is nothing to build with."""
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
) -> dict:
    """Train `model` (already on its device) and write a checkpoint folder. Returns the run summary."""
    out = Path(out_dir)
    d = dist_info or Dist()
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    dtype = compute_dtype(device, cfg.dtype, training=True)
    optimizer = make_optimizer(model, cfg, device)
    log = JsonlLog(out / "log.jsonl", d.main)

    step, tokens_seen, wall_before = 0, 0, 0.0
    if resume:
        state = load_resume_state(out, model, optimizer)
        if state is not None:
            step, tokens_seen, wall_before = state["step"], state["tokens"], state.get("wall_s", 0.0)
            batches.load_state_dict(state["data"])
            log.truncate_after(step)
    elif d.main and (out / "log.jsonl").exists():
        (out / "log.jsonl").unlink()

    fwd = model
    mode = compile_mode(cfg.compile, model, device, cfg.max_steps - step)
    if mode == "model":
        fwd = torch.compile(model)
    elif mode == "decoder":
        model.compile_decoder()
    if d.world_size > 1:
        fwd = DDP(fwd, device_ids=[device.index] if device.type == "cuda" else None)

    def save() -> None:
        if not d.main:
            return
        save_model(out, model, tokenizer, extra_config)
        save_resume_state(out, model, optimizer, {
            "step": step, "tokens": tokens_seen, "wall_s": wall_before + (time.time() - t0),
            "data": batches.state_dict(), "train_config": asdict(cfg),
        })

    def evaluate() -> dict:
        if eval_fn is None:
            return {}
        model.eval()
        with torch.no_grad(), autocast(device, dtype):
            res = eval_fn(model)
        model.train()
        return res

    model.train()
    t0 = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=cfg.quiet or not d.main, dynamic_ncols=True,
               unit="step", desc=out.name)
    last_val: dict = {}
    window_t, window_tok = time.time(), 0
    # CPU only: compiled CUDA runs differ in the last bits the same way (3.7e-9 after 6 steps on an H100), but
    # deterministic mode there needs CUBLAS_WORKSPACE_CONFIG set before CUDA starts, and slower kernels
    with deterministic_algorithms(mode is not None and device.type == "cpu"):
        while step < cfg.max_steps:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            loss_sum = torch.zeros((), device=device)  # read back only when logged: .item() waits for the GPU
            for micro in range(cfg.grad_accum):
                batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
                         for k, v in batches.next().items()}
                sync = micro == cfg.grad_accum - 1 or d.world_size == 1
                ctx = fwd.no_sync() if (d.world_size > 1 and not sync) else nullcontext()
                with ctx, autocast(device, dtype):
                    loss = fwd(**batch) / cfg.grad_accum
                loss.backward()
                loss_sum += loss.detach()
                n_tok = int(batch["targets"].numel()) * d.world_size
                tokens_seen += n_tok
                window_tok += n_tok
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            if step % cfg.log_every == 0 or step == cfg.max_steps or step == 1:
                if d.world_size > 1:  # every rank logs at the same steps, so all of them join this
                    dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
                logged_loss = loss_sum.item()
                now = time.time()
                tps = window_tok / max(now - window_t, 1e-9)
                window_t, window_tok = now, 0
                rec = {"step": step, "loss": round(logged_loss, 5), "lr": lr, "grad_norm": round(float(gnorm), 4),
                       "tokens": tokens_seen, "tok_per_s": round(tps, 1),
                       "elapsed_s": round(wall_before + now - t0, 2)}
                if flops_per_token:
                    rec["flops_per_s"] = tps * flops_per_token
                log.write(rec)
                bar.set_postfix(loss=f"{logged_loss:.3f}", tok_s=f"{tps:,.0f}", **_short(last_val))
            bar.update(1)

            if eval_fn is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                last_val = evaluate()
                log.write({"step": step, **last_val})
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                save()
    bar.close()
    if mode == "decoder":
        model.compile_decoder(False)  # the caller gets back the model it passed in
    if eval_fn is not None and not last_val:
        last_val = evaluate()
    wall = wall_before + time.time() - t0
    save()
    summary = {
        "params": sum(p.numel() for p in model.parameters()),
        "tokens": tokens_seen,
        "flops": (flops_per_token or 0) * tokens_seen,
        "wall_s": round(wall, 2),
        "steps": step,
        "final_val_loss": last_val.get("val_loss"),
        "final_val_bpb": last_val.get("val_bpb"),
        "device": hardware_name(device),
        "dtype": str(dtype).replace("torch.", ""),
        "optimizer": cfg.optimizer,
        "world_size": d.world_size,
        **(summary_extra or {}),
    }
    if d.main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _short(val: dict) -> dict:
    return {k: f"{v:.3f}" for k, v in val.items() if k == "val_loss" and isinstance(v, float)}
