"""What the commands that talk with a checkpoint in the terminal (`generate`, `chat`) share: their sampling
flags checked, and MODEL_DIR loaded on the device --device names."""

from __future__ import annotations

from tinygpt4.checkpoint import load_model
from tinygpt4.errors import UserError
from tinygpt4.runtime import resolve_device


def load_for_generation(args):
    """Check --max-tokens and --temperature, then load MODEL_DIR on --device: (model, tokenizer)."""
    if args.max_tokens < 1:
        raise UserError("--max-tokens must be at least 1")
    if args.temperature < 0:
        raise UserError("--temperature must be >= 0")
    return load_model(args.model_dir, device=str(resolve_device(args.device)))
