"""Model configuration: one size dial (depth) from which width, heads and defaults follow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


def _known_fields(cls, d: dict) -> dict:
    """The entries of a saved config that `cls` has fields for (a config.json may carry other keys)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class VisionConfig:
    image_size: int = 64
    patch_size: int = 8
    width: int = 192
    depth: int = 4
    n_head: int = 3
    shuffle: int = 2  # pixel-shuffle factor: (image_size/patch)^2 / shuffle^2 tokens per image
    stem: str = "patch"  # patch embedding: "patch" (one strided conv, as in ViT) or "conv" (3x3 conv stack)
    global_token: bool = False  # projector adds a summary of the whole image (all tokens, by position) to each token

    @property
    def tokens_per_image(self) -> int:
        side = self.image_size // self.patch_size
        return (side // self.shuffle) ** 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VisionConfig:
        return cls(**_known_fields(cls, d))


VISION_PRESETS = {
    # CPU: 64 px, 8x8 patches of 8 px, pixel shuffle 2 -> 16 tokens per image, each with the image's summary.
    "tiny": VisionConfig(image_size=64, patch_size=8, width=192, depth=4, n_head=3, shuffle=2, stem="conv",
                         global_token=True),
    # GPU: 14x14 patches -> 49 tokens; 24x24 patches, shuffle 3 -> 64 tokens.
    "224": VisionConfig(image_size=224, patch_size=16, width=384, depth=8, n_head=6, shuffle=2, stem="conv"),
    "384": VisionConfig(image_size=384, patch_size=16, width=768, depth=12, n_head=12, shuffle=3, stem="conv"),
}


def vision_preset(name: str) -> VisionConfig:
    """A vision tower preset: tiny (CPU), 224 or 384 (GPU)."""
    key = str(name).lower().removesuffix("px")
    if key not in VISION_PRESETS:
        raise ValueError(f"unknown vision preset {name!r} (choose from {', '.join(VISION_PRESETS)})")
    return VisionConfig.from_dict(VISION_PRESETS[key].to_dict())


@dataclass
class ModelConfig:
    vocab_size: int = 8192
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_kv_head: int = 2
    head_dim: int = 64
    mlp_hidden: int = 704
    seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    vision: VisionConfig | None = field(default=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vision"] = self.vision.to_dict() if self.vision else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        kw = _known_fields(cls, d)
        if kw.get("vision") is not None:
            kw["vision"] = VisionConfig.from_dict(kw["vision"])
        return cls(**kw)


def _round_up(x: float, m: int) -> int:
    return int((x + m - 1) // m * m)


def config_for_depth(depth: int, vocab_size: int, seq_len: int | None = None, width: int | None = None) -> ModelConfig:
    """nanochat's dial: width = 64·depth; 64-wide heads while small, 128-wide from 512 up; GQA with half as
    many KV heads; SwiGLU hidden = 8/3·width rounded to 64 (same FLOPs as a 4× GELU MLP)."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    n_embd = width if width is not None else 64 * depth
    head_dim = 64 if n_embd < 512 else 128
    head_dim = min(head_dim, n_embd)
    n_head = max(1, n_embd // head_dim)
    n_kv_head = max(1, n_head // 2)
    if seq_len is None:
        seq_len = 256 if n_embd < 512 else 2048
    return ModelConfig(
        vocab_size=vocab_size,
        n_layer=depth,
        n_embd=n_embd,
        n_head=n_head,
        n_kv_head=n_kv_head,
        head_dim=head_dim,
        mlp_hidden=_round_up(8 * n_embd / 3, 64),
        seq_len=seq_len,
    )


PRESETS = {"tiny": 4, "d12": 12, "d20": 20, "d26": 26}


def model_preset(name: str | int, vocab_size: int, seq_len: int | None = None) -> ModelConfig:
    """A preset name (tiny, d12, d20, d26) or a bare depth."""
    if isinstance(name, int) or str(name).isdigit():
        return config_for_depth(int(name), vocab_size, seq_len)
    key = str(name).lower()
    if key.startswith("d") and key[1:].isdigit():
        return config_for_depth(int(key[1:]), vocab_size, seq_len)
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)} or a depth)")
    return config_for_depth(PRESETS[key], vocab_size, seq_len)
