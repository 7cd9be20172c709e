"""The decoding core shared by `Engine` (a fixed batch of prompts) and the server's continuous-batching
`serve.decoder.Decoder`: a left-padded prefill into a KV cache, one-token decode steps, the special tokens a
reply may never contain, sampling, and per-token log-probabilities.

Prompts of different lengths are left-padded and share one cache write position; padding is masked out
through the cache's `valid` and each row has its own RoPE positions, so a batched row decodes exactly as it
would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tinygpt4.model.gpt import KVCache, causal_mask_with_padding
from tinygpt4.runtime import autocast
from tinygpt4.tokenizer import SPECIALS

# Special tokens a reply may never contain: only <|eot|> (which ends it) is generated. A sampled <|image|>
# would claim an image that does not exist, a role token would forge a turn.
NEVER_GENERATED = [i for i, t in enumerate(SPECIALS) if t != "<|eot|>"]


def mask_specials(logits: torch.Tensor) -> torch.Tensor:
    """logits [..., V] with the never-generated special tokens at -inf (a copy)."""
    out = logits.clone()
    out[..., NEVER_GENERATED] = float("-inf")
    return out


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """logits [B, V] -> token ids [B]. temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        cum = probs.cumsum(-1)
        drop = cum - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def seeded_generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [B, V] in fp32 (what logprobs report, from the logits the sampler saw)."""
    return F.log_softmax(logits.float(), -1)


def token_logprob(lp: torch.Tensor, token: int, top: int) -> tuple[float, dict[int, float] | None]:
    """One row's log-probabilities [V] -> the chosen token's, and {id: logprob} of the `top` most likely
    tokens (None when top is 0)."""
    tops = None
    if top:
        v, ix = lp.topk(top)
        tops = {int(a): float(b) for a, b in zip(ix, v)}
    return float(lp[token]), tops


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device):
    """ids [B, P] left-padded to the longest prompt, valid [B, P] (False on padding) and each row's RoPE
    positions [B, P] (0 on its first real token, padding clamped to 0)."""
    B, P = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, P), pad_id, dtype=torch.long)
    valid = torch.zeros(B, P, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p)
        valid[i, P - len(p):] = True
    ids, valid = ids.to(device), valid.to(device)
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    return ids, valid, positions


@dataclass
class Prefill:
    logits: torch.Tensor  # [B, V] after each row's last prompt token
    cache: KVCache  # holding the prompts, its write position just after them
    next_pos: torch.Tensor  # [B] the RoPE position of each row's next token


def prefill(model, prompts: list[list[int]], images: list | None, *, pad_id: int, room: int,
            device: torch.device, dtype: torch.dtype) -> Prefill:
    """Run the left-padded prompts through the model into a fresh cache with `room` free columns after the
    longest prompt. `images` fill the prompts' placeholder runs in row-major order (None: no images); the
    output head runs on each row's last position only."""
    ids, valid, positions = left_pad(prompts, pad_id, device)
    B, P = ids.shape
    cache = KVCache(model.config, B, P + room, device, dtype)
    cache.valid[:, :P] = valid
    with autocast(device, dtype):
        emb = model.embed(ids, images)
        mask = causal_mask_with_padding(cache.valid, P, 0)
        logits = model(inputs_embeds=emb, positions=positions, attn_mask=mask, cache=cache, logits_at="last")
    return Prefill(logits[:, -1], cache, positions[:, -1] + 1)


def decode_step(model, cache: KVCache, tokens: torch.Tensor, positions: torch.Tensor,
                live: torch.Tensor | bool, dtype: torch.dtype) -> torch.Tensor:
    """Feed one token per cache row (tokens, positions: [B]) at the cache's write position; `live` marks the
    rows whose new column is attended to (a free slot's is not). Returns the next logits [B, V]."""
    cache.valid[:, cache.pos] = live
    mask = causal_mask_with_padding(cache.valid, 1, cache.pos)
    with autocast(tokens.device, dtype):
        return model(idx=tokens[:, None], positions=positions[:, None], attn_mask=mask, cache=cache)[:, -1]
