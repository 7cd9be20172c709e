"""`tinygpt4 generate`: continue a text prompt with a trained checkpoint, streaming to stdout."""

from __future__ import annotations

import sys

from tinygpt4.engine import Engine
from tinygpt4.interactive import load_for_generation


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a checkpoint",
                       description="Continue --prompt with a checkpoint folder, streaming the text.")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--prompt", default="", help="text to continue (empty: start a new document)")
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    model, tok = load_for_generation(args)
    prompt = [tok.bos_id] + tok.encode(args.prompt)
    sys.stdout.write(args.prompt)
    for piece in Engine(model, tok).stream(prompt, max_new_tokens=args.max_tokens, temperature=args.temperature,
                                           top_k=args.top_k, top_p=args.top_p, seed=args.seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
