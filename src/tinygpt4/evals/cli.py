"""`tinygpt4 eval MODEL_DIR --task NAME[:PATH]... --out DIR` (or `--endpoint URL --model NAME`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tinygpt4.errors import UserError
from tinygpt4.evals import suite
from tinygpt4.evals.endpoint import EndpointModel


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint or an OpenAI-compatible endpoint",
        description="Evaluate a tinygpt4 checkpoint folder, or any OpenAI-compatible endpoint, and write "
                    "one JSON per task ({task, config, summary, items}) to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="tasks: exams, exams_<lang>, mmlu:PATH, calibration, truthfulqa, factuality, image_qa, "
               "followup, bpb, safety, xstest:PATH, toxicity, toxicity_rtp:PATH\n"
               "(NAME:PATH reads PATH instead of the world folder's file)",
    )
    p.add_argument("model_dir", nargs="?", help="checkpoint folder (omit with --endpoint)")
    p.add_argument("--task", action="append", default=[], metavar="NAME[:PATH]", help="task to run (repeatable)")
    p.add_argument("--suite", choices=["report"], help="run every task the report needs")
    p.add_argument("--out", help="output folder (default: <run>/evals/<stage> next to MODEL_DIR)")
    p.add_argument("--world", help="world folder for default task data (default: MODEL_DIR/../world)")
    p.add_argument("--stage", help="stage name used in logs and the default --out (default: MODEL_DIR's name)")
    p.add_argument("--endpoint", help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", dest="model_name", help="model name to send to the endpoint")
    p.add_argument("--api-key", help="API key for the endpoint (default: $OPENAI_API_KEY)")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_true", default=None,
                      help="prompt through the chat template (default: every stage but 'base')")
    chat.add_argument("--no-chat", dest="chat", action="store_false", help="plain-text prompts (base model)")
    p.add_argument("--shots", default="0,5", help="few-shot counts for multiple choice (default 0,5)")
    p.add_argument("--limit", type=int, help="at most N items per task (per subject for multiple choice)")
    p.add_argument("--grader", help="safety grader for safety, xstest and toxicity: regex, judge:URL or a trained "
                   "classifier folder (default: MODEL_DIR/../grader when it exists, else regex)")
    p.add_argument("--scorer", action="append", default=[], metavar="SPEC",
                   help="toxicity scorer (repeatable): grader, profanity_check, moderation:URL "
                        "(default: grader and, when installed, profanity_check)")
    p.add_argument("--samples", type=int, help="toxicity samples per prompt (default 5; the paper's is 25)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a machine that is "
                   "already busy: more threads than free cores slow every small operation down)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if not args.task and not args.suite:
        raise UserError("nothing to run: give --task NAME[:PATH] (repeatable) or --suite report")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.endpoint:
        if not args.model_name:
            raise UserError("--endpoint needs --model NAME")
        lm = EndpointModel(args.endpoint, args.model_name, api_key=args.api_key)
        stage = args.stage or args.model_name
    else:
        if not args.model_dir:
            raise UserError("give a checkpoint folder (MODEL_DIR) or --endpoint URL --model NAME")
        model_dir = Path(args.model_dir)
        if not model_dir.is_dir():
            raise UserError(f"model folder not found: {model_dir}")
        lm = suite.load_backend(model_dir, device=args.device)
        stage = args.stage or model_dir.resolve().name
    world = Path(args.world) if args.world else None
    if world is None and args.model_dir and (Path(args.model_dir).resolve().parent / "world").is_dir():
        world = Path(args.model_dir).resolve().parent / "world"
    if args.out:
        out = Path(args.out)
    elif args.model_dir and not args.endpoint:
        out = Path(args.model_dir).resolve().parent / "evals" / stage
    else:
        raise UserError("--out DIR is required with --endpoint")
    try:
        shots = tuple(int(s) for s in args.shots.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--shots must be comma-separated integers, got {args.shots!r}") from None
    if not shots or min(shots) < 0:
        raise UserError("--shots needs at least one count >= 0")
    chat = args.chat if args.chat is not None else stage != "base"
    tasks = []
    if args.suite == "report":
        if world is None:
            raise UserError("--suite report needs a world folder (--world DIR)")
        tasks += suite.report_tasks(world, chat=chat, images=bool(getattr(lm, "supports_images", False)))
    for spec in args.task:
        name, path = suite.parse_task(spec)
        tasks += suite.resolve(name, path, world)
    if args.samples is not None and args.samples < 1:
        raise UserError("--samples must be at least 1")
    grader = args.grader or suite.default_grader(args.model_dir if not args.endpoint else None)
    suite.run_tasks(lm, tasks, out, stage=stage, chat=chat, limit=args.limit, shots=shots, grader=grader,
                    scorers=tuple(args.scorer) or None, samples=args.samples)
    print(f"wrote {len(tasks)} result(s) to {out}")
    return 0
