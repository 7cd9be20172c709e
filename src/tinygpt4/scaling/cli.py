"""`tinygpt4 scale`: predict the target's final loss from a ladder of small runs, and later record the outcome."""

from __future__ import annotations

import json
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.scaling.ladder import record_outcome, run_ladder
from tinygpt4.train.pretrain import PretrainConfig


def register(sub) -> None:
    p = sub.add_parser(
        "scale", help="predict a pretraining run's final loss from a ladder of small runs",
        description="Train a ladder of small models the way the target preset will be trained, fit "
        "L(C) = a*C^b + c and write the prediction to OUT/fit.json before the target trains. With "
        "--outcome, record the trained target's actual final loss beside the prediction instead.",
    )
    p.add_argument("--data", nargs="+", metavar="PATH", help="pretraining files or folders (as for pretrain)")
    p.add_argument("--tokenizer", metavar="DIR")
    p.add_argument("--target-preset", default="tiny", help="the target's preset: tiny, d12, d20, d26 or a depth")
    p.add_argument("--out", required=True, metavar="DIR", help="the scaling folder (e.g. runs/NAME/scaling)")
    p.add_argument("--target-steps", type=int, default=None, help="the target's optimizer steps (default per preset)")
    p.add_argument("--batch-size", type=int, default=None, help="the target's batch size (default per preset)")
    p.add_argument("--lr", type=float, default=None, help="the target's peak learning rate (default per preset)")
    p.add_argument("--optimizer", default=None, choices=["adamw", "muon"], help="the target's (default per preset)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--rungs", type=int, default=6, help="number of ladder runs (at least 5 recommended)")
    p.add_argument("--seeds", type=int, default=1, help="runs per rung, averaged (the rungs' losses are noisy)")
    p.add_argument("--span", type=float, default=100.0, help="compute ratio between the largest and smallest rung")
    p.add_argument("--exams", metavar="DIR", default=None,
                   help="MMLU-layout exam folder for the capability prediction (e.g. WORLD/exams)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the intervals")
    p.add_argument("--cache-dir", default=None, help="token cache folder (default: beside the target's folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--outcome", metavar="PATH", default=None,
                   help="instead of predicting: the trained target's folder (or its summary.json); records "
                   "OUT/outcome.json")
    p.add_argument("--actual-metric", type=float, default=None,
                   help="with --outcome: the target's measured capability metric")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    out = Path(args.out)
    if args.outcome:
        summary = Path(args.outcome)
        if summary.is_dir():
            summary = summary / "summary.json"
        if not summary.is_file():
            raise UserError(f"{summary}: not found")
        try:
            loss = json.loads(summary.read_text())["final_val_loss"]
        except (json.JSONDecodeError, KeyError) as e:
            raise UserError(f"{summary}: no final_val_loss ({e})") from None
        if loss is None:
            raise UserError(f"{summary}: the run recorded no validation loss")
        res = record_outcome(out, float(loss), args.actual_metric)
        print(json.dumps(res, indent=2))
        return 0
    if not args.data or not args.tokenizer:
        raise UserError("--data and --tokenizer are required (or --outcome to record a result)")
    for p in args.data:
        if not Path(p).exists():
            raise UserError(f"data not found: {p}")
    if not Path(args.tokenizer).exists():
        raise UserError(f"tokenizer not found: {args.tokenizer}")
    cfg = PretrainConfig(
        data=list(args.data), tokenizer=args.tokenizer, out=str(out.parent / "base"), preset=args.target_preset,
        max_steps=args.target_steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
        seed=args.seed, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir, quiet=True,
        optimizer=args.optimizer,
    )
    res = run_ladder(cfg, out, n_rungs=args.rungs, span=args.span, n_boot=args.n_boot, seed=args.seed,
                     exams=args.exams, seeds=args.seeds)
    lo, hi = res["predicted_final_loss_interval"]
    print(f"predicted final validation loss {res['predicted_final_loss']:.4f} "
          f"[{lo:.4f}, {hi:.4f}] ({100 * res['level']:.0f}% interval) from {len(res['points'])} runs spanning "
          f"{res['compute_span']:.0f}x compute in {res['ladder_wall_s']:.0f}s -> {out / 'fit.json'}")
    return 0
