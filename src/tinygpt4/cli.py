"""One entry point: `tinygpt4 <command>`. Each command module registers its own sub-parser."""

from __future__ import annotations

import argparse
import importlib
import sys

from tinygpt4.errors import UserError

# Each module defines register(subparsers) and sets `func` on its parser.
COMMAND_MODULES = [
    "tinygpt4.run",
    "tinygpt4.tokenizer",
    "tinygpt4.train.pretrain",
    "tinygpt4.generate_cli",
    "tinygpt4.train.sft",
    "tinygpt4.train.reward",
    "tinygpt4.train.rl",
    "tinygpt4.chat_cli",
    "tinygpt4.world.cli",
    "tinygpt4.scaling.cli",
    "tinygpt4.serve.cli",
    "tinygpt4.evals.cli",
    "tinygpt4.report.cli",
    "tinygpt4.safety.cli",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygpt4", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
