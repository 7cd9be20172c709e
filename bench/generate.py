"""Generation speed: KV-cache engine vs naive full recompute (256 new tokens), and batch 8 vs batch 1.

    python bench/generate.py [--new 256] [--depth 4 --vocab 8192]
"""

from __future__ import annotations

import argparse
import time

import torch

from tinygpt4.config import config_for_depth
from tinygpt4.engine import Engine, naive_greedy
from tinygpt4.model.gpt import GPT
from tinygpt4.tokenizer import train_tokenizer_from_iterator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=32)
    args = ap.parse_args()
    tok = train_tokenizer_from_iterator(["a small corpus for a stand-in tokenizer"] * 10, 300)
    cfg = config_for_depth(args.depth, tok.vocab_size, seq_len=512)
    model = GPT.build(cfg, seed=0).eval()
    eng = Engine(model, tok)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(10, tok.vocab_size, (args.prompt,), generator=g).tolist()
    no_stop = -1  # let both decoders run the full length

    eng.generate([prompt], max_new_tokens=8)  # warm-up
    t = time.perf_counter()
    out = eng.generate([prompt], max_new_tokens=args.new)[0]
    kv = time.perf_counter() - t
    t = time.perf_counter()
    ref = naive_greedy(model, prompt, len(out.token_ids), stop_id=no_stop)
    naive = time.perf_counter() - t
    same = ref == out.token_ids
    n = len(out.token_ids)
    print(f"{n} new tokens: KV cache {n / kv:,.1f} tok/s, naive recompute {n / naive:,.1f} tok/s, "
          f"speed-up {naive / kv:.1f}x, identical tokens: {same}")

    rates = {}
    for b in (1, 8):
        prompts = [torch.randint(10, tok.vocab_size, (args.prompt,), generator=g).tolist() for _ in range(b)]
        t = time.perf_counter()
        outs = eng.generate(prompts, max_new_tokens=args.new, temperature=1.0, seed=0)
        rates[b] = sum(len(o.token_ids) for o in outs) / (time.perf_counter() - t)
        print(f"batch {b}: {rates[b]:,.1f} aggregate tok/s")
    print(f"batch 8 / batch 1: {rates[8] / rates[1]:.1f}x")


if __name__ == "__main__":
    main()
