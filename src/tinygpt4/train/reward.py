"""The reward model: `tinygpt4 rm`, a scalar head on the SFT model trained on preference pairs.

Each pair (TRL's conversational layout: prompt, chosen, rejected) is rendered twice by the chat renderer, the
prompt followed by the chosen reply and by the rejected one; the model reads each whole conversation and
the head scores the hidden state of its last token (the reply's end-of-turn). The Bradley-Terry loss
-log σ(r_chosen - r_rejected) pushes the chosen reply's score above the rejected one's. Held-out pairs
(split "test") give the pairwise accuracy per pair kind.

The checkpoint is the backbone's weights plus `reward_head.*`, with `"stage": "rm"` in config.json;
`load_reward_model` reads it back (the RL stage's reward).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tinygpt4.chat import render_chat
from tinygpt4.checkpoint import build_model, load_model, read_config
from tinygpt4.config import ModelConfig
from tinygpt4.data.images import ImageCache, normalize_pixels
from tinygpt4.data.readers import image_root_for, read_preferences
from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_text, autocast, compute_dtype, resolve_device
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.cli_args import add_option, add_run_options, config_from_args
from tinygpt4.train.loop import TrainConfig, train


class RewardModel(torch.nn.Module):
    """A chat model's decoder with a linear head that scores a conversation at a chosen position."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        d = backbone.config.n_embd
        self.reward_head = torch.nn.Linear(d, 1)
        torch.nn.init.zeros_(self.reward_head.weight)  # a fresh head scores everything 0: no initial bias
        torch.nn.init.zeros_(self.reward_head.bias)

    @property
    def config(self) -> ModelConfig:
        return self.backbone.config

    def forward(self, idx: torch.Tensor, last: torch.Tensor, images=None) -> torch.Tensor:
        """idx [B, T] right-padded conversations, last [B] the index of each one's final token -> [B]."""
        h = hidden_states(self.backbone, idx, images)
        rows = torch.arange(idx.size(0), device=idx.device)
        return self.reward_head(h[rows, last]).squeeze(-1).float()


def hidden_states(model: torch.nn.Module, idx: torch.Tensor, images=None) -> torch.Tensor:
    """The final hidden states [B, T, D] of a text model or a vision-language model (images spliced in)."""
    lm = getattr(model, "lm", model)
    return lm.hidden_states(model.embed(idx, images) if images is not None else lm.model.embed_tokens(idx))


# ---- data --------------------------------------------------------------------------------------------------

@dataclass
class Pair:
    chosen: list[int]
    rejected: list[int]
    images: list[tuple[str, str]]  # (root, ref) of the prompt's images (both sides share the prompt)
    kind: str


def render_pairs(records: list[dict], tok: Tokenizer, image_tokens: int, max_len: int,
                 root: Path) -> tuple[list[Pair], int]:
    """Render each pair's two conversations; pairs too long for the model are skipped and counted."""
    pairs, skipped = [], 0
    for rec in records:
        try:
            c = render_chat(rec["prompt"] + rec["chosen"], tok, image_tokens=image_tokens, load_images=False)
            r = render_chat(rec["prompt"] + rec["rejected"], tok, image_tokens=image_tokens, load_images=False)
        except UserError:
            skipped += 1
            continue
        if max(len(c.ids), len(r.ids)) > max_len:
            skipped += 1
            continue
        pairs.append(Pair(c.ids, r.ids, [(str(root), ref) for ref in c.images], rec.get("kind", "")))
    return pairs, skipped


class PairBatches:
    """Endless batches of B pairs as 2B right-padded rows (chosen first, then rejected), shuffled per
    epoch with (seed, epoch); the position (epoch, index) resumes exactly."""

    def __init__(self, pairs: list[Pair], batch_size: int, pad_id: int, *, image_size: int | None, seed: int = 0):
        if not pairs:
            raise UserError("no preference pairs to train on")
        self.pairs, self.batch_size, self.pad_id, self.seed = pairs, batch_size, pad_id, seed
        self.images = ImageCache(image_size) if image_size else None
        self.epoch, self.pos = 0, 0

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.pairs))

    def next(self) -> dict:
        picked = []
        while len(picked) < self.batch_size:
            picked.append(self.pairs[int(self._order()[self.pos])])
            self.pos += 1
            if self.pos == len(self.pairs):
                self.epoch, self.pos = self.epoch + 1, 0
        return self.collate(picked)

    def collate(self, pairs: Sequence[Pair]) -> dict:
        seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        T = max(len(s) for s in seqs)
        idx = torch.full((len(seqs), T), self.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            idx[i, :len(s)] = torch.tensor(s)
        batch = {"idx": idx, "last": torch.tensor([len(s) - 1 for s in seqs])}
        if self.images is not None:
            pics = [self.images.get(root, ref) for side in (0, 1) for p in pairs for root, ref in p.images]
            batch["images"] = normalize_pixels(pics) if pics else None
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "n_pairs": len(self.pairs)}

    def load_state_dict(self, d: dict) -> None:
        if (d.get("seed"), d.get("n_pairs")) != (self.seed, len(self.pairs)):
            raise UserError("cannot resume the reward model's data position: other pairs or seed")
        self.epoch, self.pos = int(d["epoch"]), int(d["pos"])


def bradley_terry_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """-log σ(r_chosen - r_rejected), averaged over the batch's pairs."""
    scores = model(batch["idx"], batch["last"], batch.get("images"))
    chosen, rejected = scores.chunk(2)
    return -F.logsigmoid(chosen - rejected).mean()


@torch.no_grad()
def pairwise_accuracy(model: RewardModel, batches: PairBatches, pairs: list[Pair], batch_size: int = 32) -> dict:
    """Share of pairs whose chosen reply scores higher, overall and per kind, and the mean margin."""
    wins: dict[str, list[float]] = {}
    margins = []
    device = next(model.parameters()).device
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        b = batches.collate(chunk)
        s = model(b["idx"].to(device), b["last"].to(device),
                  None if b.get("images") is None else b["images"].to(device))
        c, r = s.chunk(2)
        for p, m in zip(chunk, (c - r).tolist()):
            wins.setdefault(p.kind, []).append(float(m > 0))
            margins.append(m)
    everything = [w for ws in wins.values() for w in ws]
    return {"pair_accuracy": float(np.mean(everything)) if everything else None, "pairs": len(everything),
            "mean_margin": float(np.mean(margins)) if margins else None,
            "by_kind": {k: {"accuracy": round(float(np.mean(v)), 4), "n": len(v)} for k, v in sorted(wins.items())}}


# ---- checkpoint ----------------------------------------------------------------------------------------------

def load_reward_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[RewardModel, Tokenizer]:
    """(reward model, tokenizer) from an `rm` checkpoint folder, in eval mode."""
    d = Path(model_dir)
    cfg = read_config(d)
    if cfg.get("stage") != "rm":
        raise UserError(f"{model_dir} is not a reward model checkpoint (its config.json says stage "
                        f"{cfg.get('stage')!r}); train one with `tinygpt4 rm`")
    rm = RewardModel(build_model(ModelConfig.from_dict(cfg["model"]), device="cpu", init=False))
    missing, unexpected = rm.load_state_dict(load_file(str(d / "model.safetensors"), device="cpu"), strict=False)
    missing = [k for k in missing if not (k.endswith("lm_head.weight") and rm.config.tie_embeddings)]
    if missing or unexpected:
        raise UserError(f"{d}: weights do not match a reward model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return rm.to(device).eval(), Tokenizer.load(d)


# ---- the stage -----------------------------------------------------------------------------------------------

@dataclass
class RMConfig:
    sft: str
    data: list[str]
    out: str
    max_steps: int = 150
    batch_size: int = 16  # pairs per step
    lr: float = 1e-4
    warmup_steps: int = 10
    eval_every: int = 50
    save_every: int = 0
    log_every: int = 10
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    optimizer: str = "adamw"
    compile: str = "off"
    quiet: bool = False
    extra: dict = field(default_factory=dict)


def _load_pairs(cfg: RMConfig, tok: Tokenizer, backbone) -> tuple[list[Pair], list[Pair], dict]:
    records = read_preferences(cfg.data)
    refs = [p["image_url"]["url"] for r in records for m in r["prompt"] if isinstance(m.get("content"), list)
            for p in m["content"] if p.get("type") == "image_url"]
    root = image_root_for(cfg.data[0], refs) if refs else Path(cfg.data[0]).parent.resolve()
    image_tokens = backbone.tokens_per_image if getattr(backbone.config, "vision", None) else 0
    max_len = backbone.config.seq_len
    train_recs = [r for r in records if r.get("split", "train") != "test"]
    test_recs = [r for r in records if r.get("split") == "test"]
    train_pairs, skip_a = render_pairs(train_recs, tok, image_tokens, max_len, root)
    test_pairs, skip_b = render_pairs(test_recs, tok, image_tokens, max_len, root)
    return train_pairs, test_pairs, {"train_pairs": len(train_pairs), "test_pairs": len(test_pairs),
                                     "skipped_too_long": skip_a + skip_b}


def run_rm(cfg: RMConfig) -> dict:
    """Train the reward model from an SFT checkpoint and write `cfg.out` (checkpoint, summary, eval.json)."""
    if cfg.max_steps < 1 or cfg.batch_size < 1:
        raise UserError("--max-steps and --batch-size must be at least 1")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    backbone, tok = _load_backbone(cfg.sft)
    train_pairs, test_pairs, stats = _load_pairs(cfg, tok, backbone)
    rm = RewardModel(backbone).to(device)
    image_size = backbone.config.vision.image_size if getattr(backbone.config, "vision", None) else None
    batches = PairBatches(train_pairs, cfg.batch_size, tok.pad_id, image_size=image_size, seed=cfg.seed)
    held = PairBatches(test_pairs or train_pairs[:1], cfg.batch_size, tok.pad_id, image_size=image_size)

    def eval_fn(model) -> dict:
        res = pairwise_accuracy(model, held, test_pairs) if test_pairs else {}
        return {"val_pair_accuracy": res.get("pair_accuracy")}

    tc = TrainConfig(max_steps=cfg.max_steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, eval_every=cfg.eval_every,
                     save_every=cfg.save_every, log_every=cfg.log_every, dtype=cfg.dtype, compile=cfg.compile,
                     seed=cfg.seed, quiet=cfg.quiet, optimizer=cfg.optimizer, weight_decay=0.0)
    summary = train(rm, batches, tc, cfg.out, tokenizer=tok, eval_fn=eval_fn, resume=cfg.resume,
                    extra_config={"stage": "rm", "sft": str(cfg.sft), "reward": {"pooling": "last_token"},
                                  **cfg.extra},
                    loss_fn=bradley_terry_loss, summary_extra={"data": stats})
    rm.eval()
    with autocast(device, compute_dtype(device)):
        result = {"train": pairwise_accuracy(rm, held, train_pairs[:512]),
                  "test": pairwise_accuracy(rm, held, test_pairs), **stats}
    atomic_write_text(Path(cfg.out) / "eval.json", json.dumps(result, indent=2))
    summary["eval"] = result
    return summary


def _load_backbone(sft_dir: str):
    model, tok = load_model(sft_dir, device="cpu")
    model.train()
    return model, tok


def register(sub) -> None:
    p = sub.add_parser("rm", help="train a reward model on preference pairs",
                       description="A scalar head on an SFT model, trained with the Bradley-Terry loss on "
                       "preference pairs in TRL's conversational layout ({prompt, chosen, rejected} message "
                       "lists, optional kind and split); pairs with split \"test\" are held out.")
    p.add_argument("--sft", required=True, metavar="DIR", help="the SFT checkpoint the reward model starts from")
    p.add_argument("--data", required=True, nargs="+", metavar="FILE", help="preference JSONL files")
    p.add_argument("--out", required=True, metavar="DIR")
    for name in ("max_steps", "batch_size", "warmup_steps", "log_every"):
        add_option(p, RMConfig, name, type=int)
    add_option(p, RMConfig, "lr", type=float)
    add_run_options(p, RMConfig)
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    summary = run_rm(config_from_args(RMConfig, args))
    test = summary["eval"]["test"]
    print(f"reward model: held-out pair accuracy {test.get('pair_accuracy')} over {test.get('pairs')} pairs "
          f"-> {args.out}")
    return 0
