"""Command-line options that set a config dataclass's fields: each option is declared once, takes its default
from the field it sets, and the parsed options become the config without being listed again."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any


def config_default(cls: type, name: str) -> Any:
    """The default of dataclass `cls`'s field `name`."""
    for f in fields(cls):
        if f.name == name:
            if f.default_factory is not MISSING:
                return f.default_factory()
            if f.default is MISSING:
                raise ValueError(f"{cls.__name__}.{name} has no default")
            return f.default
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def add_option(p: argparse.ArgumentParser, cls: type, name: str, *flags: str, **kw) -> None:
    """An option (default flag: --the-field-name) that sets field `name` of `cls`, with that field's
    default."""
    flags = flags or ("--" + name.replace("_", "-"),)
    p.add_argument(*flags, dest=name, default=config_default(cls, name), **kw)


def add_run_options(p: argparse.ArgumentParser, cls: type, *, optimizer_help: str = "") -> None:
    """The options every training command shares: checkpoints, validation, resume, seed, device, precision,
    optimizer, compilation and the progress bar."""
    add_option(p, cls, "save_every", type=int, help="checkpoint every N steps (0: only at the end)")
    add_option(p, cls, "eval_every", type=int, help="validate every N steps")
    add_option(p, cls, "resume", action="store_true", help="continue from the last checkpoint in --out")
    add_option(p, cls, "seed", type=int)
    add_option(p, cls, "device", help="auto, cpu, cuda, cuda:N")
    add_option(p, cls, "dtype", choices=["auto", "bf16", "fp32"])
    add_option(p, cls, "optimizer", choices=["adamw", "muon"],
               help="muon: Muon for the transformer blocks' matrices, AdamW for the rest" + optimizer_help)
    add_option(p, cls, "compile", choices=["auto", "on", "off"])
    add_option(p, cls, "quiet", action="store_true", help="no progress bar")


def config_from_args(cls: type, args: argparse.Namespace, **given):
    """`cls` from the parsed options that name its fields (and `given`); the other fields keep their
    defaults."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names}, **given)
