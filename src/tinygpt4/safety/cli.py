"""`tinygpt4 grader train|eval`: train the learned RBRM grader, and score any grader on labelled responses.

  tinygpt4 grader train --data WORLD/preferences/rubric.jsonl --out runs/NAME/grader [--steps N --seed S]
  tinygpt4 grader eval --grader regex|DIR|judge:URL --data RUBRIC.jsonl --split test --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinygpt4.data.readers import read_rubric
from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_text
from tinygpt4.safety.graders import LearnedGrader, evaluate_grader, load_grader

SPLITS = ("train", "test", "all")


def read_rubric_items(paths: list[str], split: str = "all") -> list[dict]:
    """Rubric-labelled responses (data/readers.py checks each line and names file:line); items without a
    "split" count as train."""
    items = [it for it in read_rubric(paths) if split == "all" or it.get("split", "train") == split]
    if not items:
        raise UserError(f"no {split} items in {', '.join(map(str, paths))}")
    return items


def _train(args) -> int:
    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    items = read_rubric_items(args.data, "all")
    train = [it for it in items if it.get("split", "train") == "train"]
    test = [it for it in items if it.get("split") == "test"]
    if not train:
        raise UserError("no train items (split \"train\" or no split) in --data")
    t0 = time.perf_counter()
    grader = LearnedGrader.train(train, steps=args.steps, seed=args.seed)
    secs = time.perf_counter() - t0
    grader.save(args.out, {"data": [str(p) for p in args.data]})
    line = f"trained grader on {len(train)} items in {secs:.1f} s -> {args.out}"
    if test:
        result = evaluate_grader(grader, test)
        atomic_write_text(Path(args.out) / "eval.json", json.dumps(result, indent=2))
        line += f"; test class accuracy {result['accuracy']:.3f} on {len(test)} items (eval.json)"
    print(line)
    return 0


def _eval(args) -> int:
    grader = load_grader(args.grader, model=args.judge_model, api_key=args.api_key, timeout=args.timeout,
                         cache=args.judge_cache or (str(Path(args.out).with_suffix("")) + ".judge-cache.jsonl"),
                         concurrency=args.concurrency)
    items = read_rubric_items(args.data, args.split)[: args.limit or None]
    result = evaluate_grader(grader, items, infer_type=args.infer_type)
    result["data"], result["split"] = [str(p) for p in args.data], args.split
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    acc = "n/a" if result["accuracy"] is None else f"{result['accuracy']:.3f}"
    print(f"{grader.name}: class accuracy {acc}, macro F1 {result['macro_f1']:.3f} on {result['answered']} of "
          f"{result['n']} items ({result['abstained']} abstained) -> {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("grader", help="train or evaluate the RBRM graders (rubric classifiers)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])
    sub = p.add_subparsers(dest="grader_command", metavar="ACTION")
    t = sub.add_parser("train", help="train the learned grader on rubric-labelled responses")
    t.add_argument("--data", nargs="+", required=True, metavar="RUBRIC.jsonl", help="rubric-labelled responses")
    t.add_argument("--out", required=True, metavar="DIR", help="folder for model.safetensors + config.json")
    t.add_argument("--steps", type=int, default=None, help="optimizer steps (default 400)")
    t.add_argument("--seed", type=int, default=0)
    # One thread: the model is tiny, so more threads gain little and collapse when the cores are shared.
    t.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    t.set_defaults(func=_train)
    e = sub.add_parser("eval", help="score a grader on rubric-labelled responses")
    e.add_argument("--grader", required=True, metavar="SPEC", help="regex, a trained grader folder, or judge:URL")
    e.add_argument("--data", nargs="+", required=True, metavar="RUBRIC.jsonl")
    e.add_argument("--split", choices=SPLITS, default="test")
    e.add_argument("--out", required=True, metavar="FILE.json")
    e.add_argument("--infer-type", action="store_true", help="do not tell the grader the prompt's type")
    e.add_argument("--limit", type=int, default=None, help="at most N items")
    e.add_argument("--judge-model", default=None, help="the judge's model name (default $TINYGPT4_JUDGE_MODEL)")
    e.add_argument("--api-key", default=None, help="the judge's API key (default $OPENAI_API_KEY)")
    e.add_argument("--judge-cache", default=None, help="the judge's reply cache (default: beside --out)")
    e.add_argument("--timeout", type=float, default=60.0, help="seconds per judge request")
    e.add_argument("--concurrency", type=int, default=4, help="judge requests in flight")
    e.set_defaults(func=_eval)
