"""Load test for `tinygpt4 serve` on loopback: N concurrent streaming clients -> TTFT, tokens/s, errors.

Starts the server as a subprocess on 127.0.0.1 (a random free port), runs each concurrency level for a
bounded time and a bounded number of requests, and prints one row per level plus the ratios against the
single-client baseline measured in the same run. Without --model it serves a randomly initialised `tiny`
preset model (throughput does not depend on the weights).

    python bench/serve_load.py                      # levels 1, 8, 32; 64 tokens per answer
    python bench/serve_load.py --model runs/demo/sft --levels 1,8 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PROMPTS = ["Hello world", "What is the capital of Veloria?", "Tell me a short story.", "2 + 3 =",
           "How do I kill a stuck process?", "Describe the weather today.", "Hola mundo", "List three colours."]


def build_random_checkpoint(out: Path) -> Path:
    from tinygpt4.checkpoint import build_model, save_model
    from tinygpt4.config import model_preset
    from tinygpt4.tokenizer import train_tokenizer_from_iterator

    texts = PROMPTS * 50 + [" ".join(PROMPTS[i:] + PROMPTS[:i]) for i in range(len(PROMPTS))] * 20
    tok = train_tokenizer_from_iterator(texts, 1024)
    cfg = model_preset("tiny", tok.vocab_size)
    save_model(out, build_model(cfg, seed=0), tok)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, port: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tinygpt4.cli", "serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--moderation", "off", "--max-batch", str(max_batch), "--max-queue", "256",
           "--log-level", "warning", "--device", "cpu"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy in time")


async def one_request(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> dict:
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 1.0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"error": f"HTTP {r.status_code}"}
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if "error" in ev:
                return {"error": ev["error"].get("type", "stream error")}
            if ttft is None and ev.get("choices") and "content" in ev["choices"][0]["delta"] \
                    and "role" not in ev["choices"][0]["delta"]:
                ttft = time.perf_counter() - t0
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
    return {"ttft": ttft if ttft is not None else time.perf_counter() - t0, "tokens": tokens,
            "latency": time.perf_counter() - t0}


async def run_level(url: str, clients: int, seconds: float, max_requests: int, max_tokens: int) -> dict:
    results: list[dict] = []
    deadline = time.perf_counter() + seconds
    per_client = max(1, max_requests // clients)
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)

    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0), limits=limits) as client:
        async def worker(k: int) -> None:
            for i in range(per_client):
                if time.perf_counter() >= deadline:
                    return
                try:
                    results.append(await one_request(client, url, PROMPTS[(k + i) % len(PROMPTS)], max_tokens))
                except (httpx.HTTPError, json.JSONDecodeError) as e:
                    results.append({"error": type(e).__name__})

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if "error" not in r]
    ttfts = sorted(r["ttft"] for r in ok)
    tokens = sum(r["tokens"] for r in ok)
    return {
        "clients": clients, "requests": len(results), "errors": len(results) - len(ok), "wall_s": wall,
        "completion_tokens": tokens, "tokens_per_s": tokens / wall if wall > 0 else 0.0,
        "ttft_p50_s": _pct(ttfts, 50), "ttft_p99_s": _pct(ttfts, 99),
        "latency_p50_s": _pct(sorted(r["latency"] for r in ok), 50),
        "error_kinds": sorted({r["error"] for r in results if "error" in r}),
    }


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[min(98, max(0, int(q) - 1))] if q < 100 else xs[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: a random tiny-preset model)")
    ap.add_argument("--levels", default="1,8,32", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--seconds", type=float, default=15.0, help="time limit per level")
    ap.add_argument("--max-requests", type=int, default=96, help="request limit per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if not levels or min(levels) < 1 or max(levels) > 256:
        raise SystemExit("--levels must be between 1 and 256 clients")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_random_checkpoint(Path(tmp) / "ckpt")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(model_dir, port, args.max_batch)
        try:
            wait_healthy(url, proc)
            asyncio.run(run_level(url, 1, 3.0, 3, 8))  # warm-up
            rows = [asyncio.run(run_level(url, n, args.seconds, args.max_requests, args.max_tokens))
                    for n in levels]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    base = rows[0]
    print(f"loopback, {os.cpu_count()} CPU cores visible, max_tokens={args.max_tokens}, "
          f"max_batch={args.max_batch}, model={'random tiny preset' if not args.model else args.model}")
    print(f"{'clients':>7} {'reqs':>5} {'errors':>6} {'tok/s':>8} {'x base':>7} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'p50 x base':>10}")
    for r in rows:
        ratio = r["tokens_per_s"] / base["tokens_per_s"] if base["tokens_per_s"] else float("nan")
        ttft_ratio = r["ttft_p50_s"] / base["ttft_p50_s"] if base["ttft_p50_s"] else float("nan")
        r["tokens_per_s_vs_base"], r["ttft_p50_vs_base"] = ratio, ttft_ratio
        print(f"{r['clients']:>7} {r['requests']:>5} {r['errors']:>6} {r['tokens_per_s']:>8.1f} {ratio:>6.2f}x "
              f"{r['ttft_p50_s'] * 1000:>7.0f}ms {r['ttft_p99_s'] * 1000:>7.0f}ms {ttft_ratio:>9.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "levels": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
