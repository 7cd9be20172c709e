"""Multimodal SFT step time, eager vs the compiled decoder (`VLM.compile_decoder`, what `train` does on CPU)
with the tower's attention on SDPA and as plain matmuls (`VisionAttention.explicit_on_cpu`), and with the
tower frozen (`sft --freeze-tower`),
in one process on packed batches shaped like the tiny preset's SFT: 16 rows of 256 tokens, several short
conversations per row (each with its own attention block), 40-64 images per batch, a different count each
step. Prints ms/step for each and its ratio to eager.

    python bench/sft_step.py [--steps 6] [--batch 16] [--seq 256] [--vocab 8192]
"""

from __future__ import annotations

import argparse
import time

import torch

from tinygpt4.config import config_for_depth, vision_preset
from tinygpt4.model.gpt import document_mask
from tinygpt4.model.vision import VisionAttention
from tinygpt4.model.vlm import IMAGE_ID, VLM
from tinygpt4.runtime import autocast, compute_dtype, resolve_device
from tinygpt4.train.loop import TrainConfig, make_optimizer


def make_batch(gen: torch.Generator, batch: int, seq: int, vocab: int, k: int) -> dict:
    """Rows of 60-token conversations; a conversation opens with one image (k placeholders) 80% of the time."""
    idx = torch.randint(16, vocab, (batch, seq), generator=gen)
    doc = torch.arange(seq).div(60, rounding_mode="floor").expand(batch, seq).clone()
    n_images = 0
    for b in range(batch):
        for start in range(0, seq - k, 60):
            if torch.rand((), generator=gen) < 0.8:
                idx[b, start + 1:start + 1 + k] = IMAGE_ID
                n_images += 1
    targets = torch.where(torch.rand(batch, seq, generator=gen) < 0.3, idx.roll(-1, 1), -1)
    targets[idx == IMAGE_ID] = -1
    images = torch.randn(n_images, 3, 64, 64, generator=gen)
    return {"idx": idx, "targets": targets, "images": images, "attn_mask": document_mask(doc)}


def step_ms(model, batches, device, dtype) -> float:
    opt = make_optimizer(model, TrainConfig(), device)

    def step(b):
        with autocast(device, dtype):
            loss = model(**{k: v.to(device) for k, v in b.items()})
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for b in batches[:2]:  # warm-up (and the compile, when there is one)
        step(b)
    t = time.perf_counter()
    for b in batches[2:]:
        step(b)
    return (time.perf_counter() - t) / (len(batches) - 2) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    device = resolve_device("auto")
    dtype = compute_dtype(device, training=True)
    cfg = config_for_depth(4, args.vocab, args.seq)
    cfg.vision = vision_preset("tiny")
    gen = torch.Generator().manual_seed(0)
    batches = [make_batch(gen, args.batch, args.seq, args.vocab, cfg.vision.tokens_per_image)
               for _ in range(args.steps + 2)]
    print(f"device {device}, {dtype}, threads {torch.get_num_threads()}, batch {args.batch}x{args.seq}, "
          f"images per batch {[len(b['images']) for b in batches]}")
    VisionAttention.explicit_on_cpu = False
    eager = step_ms(VLM.build(cfg, device=device, seed=0).train(), batches, device, dtype)
    print(f"eager: {eager:,.0f} ms/step (baseline)")
    for explicit in (False, True):
        VisionAttention.explicit_on_cpu = explicit
        model = VLM.build(cfg, device=device, seed=0).train()
        model.compile_decoder()
        ms = step_ms(model, batches, device, dtype)
        tower = "tower attention as matmuls (what train does)" if explicit else "tower attention on SDPA"
        print(f"compiled decoder, {tower}: {ms:,.0f} ms/step, {eager / ms:.2f}x")
    model = VLM.build(cfg, device=device, seed=0).train()
    model.compile_decoder()
    model.vision.requires_grad_(False)  # what `tinygpt4 sft --freeze-tower` does
    ms = step_ms(model, batches, device, dtype)
    print(f"compiled decoder, frozen tower (--freeze-tower): {ms:,.0f} ms/step, {eager / ms:.2f}x")


if __name__ == "__main__":
    main()
