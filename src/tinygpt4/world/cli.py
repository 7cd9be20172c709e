"""`tinygpt4 world --out DIR [--seed 0] [--scale tiny|small|full]`: write the built-in world."""

from __future__ import annotations

import argparse

from tinygpt4.world.build import timed_build
from tinygpt4.world.config import SCALES


def run(args: argparse.Namespace) -> int:
    manifest, secs = timed_build(args.out, seed=args.seed, scale=args.scale, image_size=args.image_size,
                                 force=args.force)
    total = sum(f["bytes"] for f in manifest["files"])
    images = sum(manifest["counts"]["images"].values())
    print(f"wrote world (seed {args.seed}, scale {args.scale}) to {args.out}: {manifest['counts']['facts']} facts, "
          f"{len(manifest['files'])} files + {images} images, {total / 1e6:.1f} MB of text, in {secs:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("world", help="generate the built-in procedural world (every dataset, public formats)",
                              description=__doc__)
    p.add_argument("--out", required=True, help="output directory (must be empty or an earlier world with --force)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="tiny: for tests; small: the CPU demo (default); full: larger")
    p.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--force", action="store_true", help="replace an existing world in --out")
    p.set_defaults(func=run)
