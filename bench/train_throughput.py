"""Training throughput at the reference shape, fp32 vs bf16 autocast, against a plain matmul measured in the
same process in the precision training picks here (bf16 where the hardware has it, else fp32). Prints tokens/s,
achieved FLOP/s and the fraction of the matmul rate. On a CPU without bf16 units (AVX2 only) bf16 runs
emulated at well under 1 GFLOP/s, so its row is skipped there: training uses fp32 on such a machine. A last
row trains in the picked precision with Muon instead of AdamW and prints its step time against AdamW's.

    python bench/train_throughput.py [--steps 6] [--depth 4 --width 256 --vocab 8192 --seq 512 --batch 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from tinygpt4.config import config_for_depth
from tinygpt4.model.gpt import GPT
from tinygpt4.runtime import autocast, compute_dtype, resolve_device
from tinygpt4.train.loop import TrainConfig, make_optimizer


def matmul_flops(device, dtype, n=2048, iters=10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(cfg, batch, steps, device, dtype, compile_model=False, optimizer="adamw") -> float:
    model = GPT.build(cfg, device=device, seed=0)
    opt = make_optimizer(model, TrainConfig(optimizer=optimizer, dtype="bf16" if dtype == torch.bfloat16 else "fp32"),
                         device)
    fwd = torch.compile(model) if compile_model else model
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len + 1), device=device)
    def step():
        with autocast(device, dtype):
            loss = fwd(idx=x[:, :-1], targets=x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for _ in range(2):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * cfg.seq_len * steps / (time.perf_counter() - t), model.flops_per_token()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="report MFU against this peak too")
    args = ap.parse_args()
    device = resolve_device("auto")
    cfg = config_for_depth(args.depth, args.vocab, args.seq, width=args.width)
    print(f"device {device}, threads {torch.get_num_threads()}, shape depth {cfg.n_layer} width {cfg.n_embd} "
          f"head_dim {cfg.head_dim} vocab {cfg.vocab_size} seq {cfg.seq_len} batch {args.batch}")
    picked = compute_dtype(device, training=True)
    mm_name = "bf16" if picked == torch.bfloat16 else "fp32"
    # A GPU needs a bigger product to reach its rate: at 2048^3 an H100 ran 271 TFLOP/s, under the 430 that a
    # compiled d12 training step reached
    n = 8192 if device.type == "cuda" else 2048
    mm = matmul_flops(device, picked, n)
    print(f"{mm_name} matmul {n}^3: {mm / 1e9:,.1f} GFLOP/s (baseline; training here uses {mm_name})")
    rates = {}
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        if dtype == torch.bfloat16 and picked != torch.bfloat16:
            print("bf16: skipped (no bf16 matmul units on this device; training uses fp32)")
            continue
        tps, fpt = train_rate(cfg, args.batch, args.steps, device, dtype, args.compile)
        rates[dtype] = tps
        achieved = tps * fpt
        line = (f"{name}: {tps:,.0f} tok/s, {achieved / 1e9:,.1f} GFLOP/s, "
                f"{achieved / mm:.1%} of the {mm_name} matmul rate")
        if args.peak_tflops:
            line += f", MFU {achieved / (args.peak_tflops * 1e12):.1%}"
        print(line)
    tps, _ = train_rate(cfg, args.batch, args.steps, device, picked, args.compile, optimizer="muon")
    print(f"{mm_name} with Muon: {tps:,.0f} tok/s, {rates[picked] / tps:.3f}x AdamW's step time "
          "(Newton-Schulz on the blocks' matrices)")


if __name__ == "__main__":
    main()
