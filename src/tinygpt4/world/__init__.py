"""The built-in procedural world: a seeded, multilingual, multimodal world written in public data formats."""

from tinygpt4.world.build import build_world
from tinygpt4.world.config import SCALES, WorldConfig

__all__ = ["build_world", "SCALES", "WorldConfig"]
