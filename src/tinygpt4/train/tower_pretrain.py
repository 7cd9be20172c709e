"""Vision tower pretraining on captions, before the decoder sees an image.

A linear head on the tower's flattened patch features (every patch in its place, so the head knows where
each feature sits, as a word's letters need) predicts the caption's bag of tokens: a softmax over the tokens
the captions use, each caption's target its tokens weighted by inverse caption frequency, so a sign's rare
name counts for much more than "sign" or "that". The head is thrown away afterwards; only the tower
goes on to SFT.

Why a separate stage: a tower trained from scratch inside SFT first learns what every answer to a question
has in common, which needs no picture, and its features collapse towards one vector for every image (every
sign is then read as the same word). A tower that has already learnt to tell the pictures apart starts SFT
where that collapse cannot happen, and the tower alone is cheap to train: no decoder runs. What the stage
gained (sign reading) and cost (colour questions) on the tiny preset is in docs/training-notes.md.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinygpt4.data.images import ImageCache, normalize_pixels
from tinygpt4.data.readers import read_captions
from tinygpt4.errors import UserError
from tinygpt4.runtime import autocast
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.loop import TrainConfig, make_optimizer


@dataclass
class CaptionBags:
    """Caption images and their bag-of-tokens targets over the captions' own token vocabulary."""

    images: list[tuple[str, str]]  # (root, ref)
    targets: torch.Tensor          # [N, K], each row sums to 1
    vocab: list[tuple[int, ...]]   # column -> a token id, or two adjacent ones


def caption_bags(path: str | Path, tok: Tokenizer, pairs_min_count: int = 0) -> CaptionBags:
    """Read captions.jsonl ({"image", "text"}) into images and IDF-weighted token bags. With pairs_min_count
    > 0 a bag also holds each pair of adjacent tokens that at least that many captions share: a bag of single
    words cannot say which shape has which colour ("orange", "square", "purple"), a pair ("orange square") can."""
    rows, folder = read_captions(path)
    if not rows:
        raise UserError(f"{path}: no captions")
    root = str(folder)
    seqs = [tok.encode(o["text"]) for o in rows]
    bags = [{(t,) for t in s} for s in seqs]
    if pairs_min_count > 0:
        pair_bags = [set(zip(s, s[1:], strict=False)) for s in seqs]
        df = Counter(pair for b in pair_bags for pair in b)
        bags = [b | {pair for pair in pb if df[pair] >= pairs_min_count} for b, pb in zip(bags, pair_bags)]
    vocab = sorted({t for b in bags for t in b})
    col = {t: i for i, t in enumerate(vocab)}
    hits = torch.zeros(len(rows), len(vocab))
    for i, b in enumerate(bags):
        hits[i, [col[t] for t in b]] = 1.0
    # a token in every caption carries nothing about the picture: weight log(N / df), 0 for those
    idf = torch.log(len(rows) / hits.sum(0))
    weights = hits * idf
    empty = weights.sum(1) == 0
    weights[empty] = hits[empty]  # a caption of only such tokens still gets a (uniform) target
    return CaptionBags([(root, o["image"]) for o in rows], weights / weights.sum(1, keepdim=True), vocab)


class BagHead(nn.Module):
    """Flattened patch features [N, L, C] -> logits over the caption vocabulary."""

    def __init__(self, n_patches: int, width: int, n_vocab: int):
        super().__init__()
        self.proj = nn.Linear(n_patches * width, n_vocab)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats.flatten(1))


def pretrain_tower(tower: nn.Module, bags: CaptionBags, *, steps: int, batch_size: int = 64, lr: float = 1e-3,
                   seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   optimizer: str = "adamw", log=None) -> dict:
    """Train `tower` (in place) for `steps` batches of caption images; returns a summary. Linear warmup over
    the first 20 steps, then cosine decay to a tenth."""
    device = torch.device(device)
    vc = tower.config
    n_patches = (vc.image_size // vc.patch_size) ** 2
    head = BagHead(n_patches, vc.width, len(bags.vocab)).to(device)
    if optimizer == "muon":
        opt = make_optimizer(nn.ModuleDict({"tower": tower, "head": head}),
                             TrainConfig(lr=lr, weight_decay=0.05, beta2=0.999, optimizer=optimizer), device)
    else:  # the stage's original recipe, every parameter decaying, which the measured runs used
        params = [p for p in tower.parameters() if p.requires_grad] + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05, fused=device.type in ("cuda", "cpu"))
    cache = ImageCache(vc.image_size)
    rng = np.random.default_rng([seed, 17])
    n = len(bags.images)
    order, at = rng.permutation(n), 0
    was_training = tower.training
    tower.train()
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        warm = min(1.0, (step + 1) / 20)
        decay = 0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, steps)))
        for g in opt.param_groups:
            g["lr"] = lr * warm * decay
        if at + batch_size > n:
            order, at = rng.permutation(n), 0
        idx = order[at:at + batch_size]
        at += batch_size
        pix = normalize_pixels([cache.get(*bags.images[i]) for i in idx]).to(device)
        target = bags.targets[torch.as_tensor(idx)].to(device)
        with autocast(device, dtype):
            logits = head(tower(pix)).float()
        loss = -(target * F.log_softmax(logits, dim=-1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log is not None and ((step + 1) % 25 == 0 or step + 1 == steps):
            log(f"tower step {step + 1}/{steps}: loss {np.mean(losses[-25:]):.3f}")
    tower.train(was_training)
    return {"steps": steps, "images": steps * batch_size, "captions": n, "vocab": len(bags.vocab),
            "first_loss": round(losses[0], 4) if losses else None,
            "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
            "wall_s": round(time.perf_counter() - t0, 2)}
