"""Pretraining: next-token prediction on packed documents, with validation loss and bits per byte."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tinygpt4.checkpoint import build_model
from tinygpt4.config import ModelConfig, model_preset
from tinygpt4.data.pretrain_data import PackedBatches, build_token_cache, iter_val_batches
from tinygpt4.errors import UserError
from tinygpt4.runtime import init_distributed, resolve_device
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.cli_args import add_option, add_run_options, config_from_args
from tinygpt4.train.loop import TrainConfig, train
from tinygpt4.train.validation import make_val_fn


@dataclass(frozen=True)
class PretrainDefaults:
    """What a model preset trains with when the config leaves it open (None)."""

    batch_size: int  # sequences per micro-batch
    lr: float        # peak learning rate
    max_steps: int
    optimizer: str   # adamw | muon


# The tiny preset's numbers were tuned on a 2-core CPU, where Muon reaches a given validation loss in fewer
# steps than AdamW at about the same time per step (docs/training-notes.md). The GPU presets keep AdamW until
# Muon's learning rates are measured there.
PRETRAIN_DEFAULTS = {
    "tiny": PretrainDefaults(batch_size=16, lr=3e-3, max_steps=400, optimizer="muon"),
    "d12": PretrainDefaults(batch_size=32, lr=1e-3, max_steps=5000, optimizer="adamw"),
    "d20": PretrainDefaults(batch_size=32, lr=6e-4, max_steps=10000, optimizer="adamw"),
    "d26": PretrainDefaults(batch_size=32, lr=4e-4, max_steps=20000, optimizer="adamw"),
}


def pretrain_defaults(preset: str | int) -> PretrainDefaults:
    """The preset's defaults; a preset without its own row (a depth) takes tiny's."""
    return PRETRAIN_DEFAULTS.get(str(preset), PRETRAIN_DEFAULTS["tiny"])


@dataclass
class PretrainConfig:
    data: list[str]
    tokenizer: str
    out: str
    preset: str = "tiny"
    model: ModelConfig | None = None  # overrides the preset (the scaling ladder uses this)
    max_steps: int | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    warmup_steps: int = 20
    grad_accum: int = 1
    eval_every: int = 100
    save_every: int = 0
    val_batches: int = 8
    val_batch_size: int | None = None  # sequences per validation batch; default: the training batch size
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    optimizer: str | None = None  # adamw | muon; default per preset
    compile: str = "auto"
    skip_bad: bool = False
    cache_dir: str | None = None
    quiet: bool = False
    log_every: int = 10
    extra: dict = field(default_factory=dict)


class PretrainBatches:
    """Adapts the packed-window iterator to the trainer's keyword batches."""

    def __init__(self, it):
        self.it = it

    def next(self) -> dict[str, torch.Tensor]:
        x, y = self.it.next()
        return {"idx": x, "targets": y}

    def state_dict(self) -> dict:
        return self.it.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.it.load_state_dict(state)


def scored_bytes_per_token(cache) -> float:
    """Bytes of text per predicted token in the validation split (predicting a BOS is not scored)."""
    val = np.asarray(cache.val)
    scored = len(val) - 1 - int((val[1:] == cache.bos_id).sum())
    return cache.val_bytes / max(scored, 1)


def resolve_model_config(cfg: PretrainConfig, vocab_size: int) -> ModelConfig:
    if cfg.model is not None:
        mc = cfg.model
    else:
        try:
            mc = model_preset(cfg.preset, vocab_size, cfg.seq_len)
        except ValueError as e:
            raise UserError(str(e)) from None
    if mc.vocab_size != vocab_size:
        mc.vocab_size = vocab_size
    if cfg.seq_len:
        mc.seq_len = cfg.seq_len
    return mc


def run_pretrain(cfg: PretrainConfig) -> dict:
    for p in cfg.data:
        if not Path(p).exists():
            raise UserError(f"data not found: {p}")
    tok = Tokenizer.load(cfg.tokenizer)
    dist_info = init_distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)

    defaults = pretrain_defaults(cfg.preset)
    mc = resolve_model_config(cfg, tok.vocab_size)
    batch_size = cfg.batch_size or defaults.batch_size
    cache_dir = cfg.cache_dir or str(Path(cfg.out).parent / ".cache" / "tokens")
    cache = build_token_cache(cfg.data, tok, cache_dir, skip_bad=cfg.skip_bad)
    if len(cache.train) < mc.seq_len + 1:
        raise UserError(f"not enough training text: {len(cache.train)} tokens for sequences of {mc.seq_len}")
    it = PackedBatches(cache.train, batch_size, mc.seq_len, seed=cfg.seed, rank=dist_info.rank,
                       world_size=dist_info.world_size)
    val = iter_val_batches(cache.val, cfg.val_batch_size or batch_size, mc.seq_len, bos_id=cache.bos_id,
                           max_batches=cfg.val_batches)
    eval_fn = (make_val_fn([{"idx": x, "targets": y} for x, y in val], token_weighted=True,
                           bytes_per_token=scored_bytes_per_token(cache)) if val else None)

    model = build_model(mc, device=device, seed=cfg.seed)
    tc = TrainConfig(
        max_steps=cfg.max_steps or defaults.max_steps, lr=cfg.lr or defaults.lr,
        warmup_steps=cfg.warmup_steps, grad_accum=cfg.grad_accum, eval_every=cfg.eval_every,
        save_every=cfg.save_every, dtype=cfg.dtype, compile=cfg.compile, seed=cfg.seed, quiet=cfg.quiet,
        optimizer=cfg.optimizer or defaults.optimizer,
        log_every=cfg.log_every,
    )
    fpt = model.flops_per_token(mc.seq_len)
    return train(
        model, PretrainBatches(it), tc, cfg.out, tokenizer=tok, eval_fn=eval_fn, resume=cfg.resume,
        extra_config={"stage": "pretrain", "preset": cfg.preset, **cfg.extra},
        summary_extra={"preset": cfg.preset, "flops_per_token": fpt, "batch_size": batch_size,
                       "seq_len": mc.seq_len, "train_tokens_available": int(len(cache.train)),
                       "skipped_lines": cache.skipped, "non_embedding_params": model.num_params(True)},
        dist_info=dist_info, flops_per_token=fpt,
    )


# ---- CLI -------------------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a language model on text",
                       description="Pretrain on plain text, JSONL (text field) or Parquet (text column) files. "
                       "Run under torchrun for several processes (data is sharded by rank).")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH")
    p.add_argument("--tokenizer", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    add_option(p, PretrainConfig, "preset", help="tiny (CPU), d12, d20, d26, or a depth")
    add_option(p, PretrainConfig, "seq_len", type=int, help="default: the preset's")
    add_option(p, PretrainConfig, "skip_bad", "--skip-bad-lines", action="store_true",
               help="skip malformed JSONL lines (counted)")
    add_option(p, PretrainConfig, "max_steps", type=int, help="optimizer steps (default per preset)")
    add_option(p, PretrainConfig, "batch_size", type=int,
               help="sequences per micro-batch (per process; default per preset)")
    add_option(p, PretrainConfig, "grad_accum", type=int, help="micro-batches per optimizer step")
    add_option(p, PretrainConfig, "lr", type=float, help="peak learning rate (default per preset)")
    add_run_options(p, PretrainConfig, optimizer_help=" (default per preset)")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    summary = run_pretrain(config_from_args(PretrainConfig, args))
    print(f"done: {summary['steps']} steps, {summary['tokens']:,} tokens, val loss {summary['final_val_loss']}, "
          f"{summary['wall_s']:.0f}s -> {args.out}")
    return 0
