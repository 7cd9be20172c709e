"""Batched generation with a KV cache: sampling, stop tokens and strings, UTF-8-safe streaming, logprobs.

Prompts of different lengths are left-padded and share one cache write position; padding is masked out and
each row has its own RoPE positions, so a batched row decodes exactly as it would alone.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tinygpt4.errors import UserError
from tinygpt4.model.gpt import KVCache, causal_mask_with_padding
from tinygpt4.stops import StopText
from tinygpt4.tokenizer import SPECIALS, Tokenizer


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    logprobs: list[float] | None = None
    top_logprobs: list[dict[int, float]] | None = None


@dataclass
class StepEvent:
    """One new piece of text for one row; finish_reason is set on that row's last event."""

    row: int
    text: str
    token_id: int | None
    finish_reason: str | None = None
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


@dataclass
class _Row:
    decoder: codecs.IncrementalDecoder
    stops: StopText
    text: str = ""
    ids: list[int] = field(default_factory=list)
    done: bool = False


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


class Engine:
    def __init__(self, model, tokenizer: Tokenizer, dtype: torch.dtype | None = None):
        self.model = model.eval()
        self.tok = tokenizer
        self.device = next(model.parameters()).device
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.max_len = model.rope_len if hasattr(model, "rope_len") else model.lm.rope_len
        self.cfg = model.config

    # -- core loop --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def stream_batch(
        self,
        prompts: list[list[int]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_strings: tuple[str, ...] | list[str] = (),
        images: list[list] | None = None,
        top_logprobs: int = 0,
        should_stop=None,
    ) -> Iterator[StepEvent]:
        """Yield StepEvents as tokens are produced, for every row. `should_stop(row) -> bool` lets a caller
        (a disconnected HTTP client) abandon a row early."""
        if not prompts:
            return
        if any(len(p) == 0 for p in prompts):
            raise UserError("empty prompt")
        B = len(prompts)
        P = max(len(p) for p in prompts)
        if P + max_new_tokens > self.max_len:
            raise UserError(f"prompt ({P} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
                            f"context of {self.max_len} tokens")
        dev = self.device
        ids = torch.full((B, P), self.tok.pad_id, dtype=torch.long)
        valid = torch.zeros(B, P, dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids[i, P - len(p):] = torch.tensor(p)
            valid[i, P - len(p):] = True
        ids, valid = ids.to(dev), valid.to(dev)
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        cache = KVCache(self.cfg, B, P + max_new_tokens, dev, self.dtype)
        cache.valid[:, :P] = valid
        gen = None
        if seed is not None and temperature > 0:
            gen = torch.Generator(device=dev)
            gen.manual_seed(seed)
        flat_images = [im for row in (images or []) for im in row] or None
        autocast = torch.autocast(dev.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with autocast:
            emb = self.model.embed(ids, flat_images)
            mask = causal_mask_with_padding(cache.valid, P, 0)
            logits = self.model(inputs_embeds=emb, positions=positions, attn_mask=mask, cache=cache,
                                last_only=True)[:, -1]
        rows = [_Row(codecs.getincrementaldecoder("utf-8")(errors="replace"), StopText(stop_strings))
                for _ in range(B)]
        active = torch.arange(B)  # original row index of each cache row
        next_pos = positions[:, -1] + 1
        for step in range(max_new_tokens):
            logits = mask_specials(logits)
            nxt = sample_next(logits, temperature, top_k, top_p, gen)
            lp = F.log_softmax(logits.float(), -1)
            keep = []
            for j, r_idx in enumerate(active.tolist()):
                row = rows[r_idx]
                t = int(nxt[j])
                tok_lp = float(lp[j, t])
                tops = None
                if top_logprobs:
                    v, ix = lp[j].topk(top_logprobs)
                    tops = {int(a): float(b) for a, b in zip(ix, v)}
                if t == self.tok.eot_id:
                    row.done = True
                    tail, hit = row.stops.feed(row.decoder.decode(b"", final=True))
                    tail = tail if hit else tail + row.stops.flush()
                    row.text += tail
                    yield StepEvent(r_idx, tail, t, "stop", tok_lp, tops)
                    continue
                row.ids.append(t)
                last = step == max_new_tokens - 1
                raw = row.decoder.decode(self.tok.token_bytes(t))
                if last:
                    raw += row.decoder.decode(b"", final=True)
                piece, hit = row.stops.feed(raw)
                finish = "stop" if hit else None
                if finish is None and last:
                    finish = "length"
                if finish is None and should_stop is not None and should_stop(r_idx):
                    finish = "cancelled"
                if finish in ("length", "cancelled"):
                    piece += row.stops.flush()
                row.text += piece
                yield StepEvent(r_idx, piece, t, finish, tok_lp, tops)
                if finish is not None:
                    row.done = True
                else:
                    keep.append(j)
            if not keep:
                return
            if len(keep) < len(active):
                sel = torch.tensor(keep, device=dev)
                cache.select(sel)
                nxt, next_pos, active = nxt[sel], next_pos[sel], active[torch.tensor(keep)]
            cache.valid[:, cache.pos] = True
            mask = causal_mask_with_padding(cache.valid, 1, cache.pos)
            with autocast:
                logits = self.model(idx=nxt[:, None], positions=next_pos[:, None], attn_mask=mask,
                                    cache=cache)[:, -1]
            next_pos = next_pos + 1

    # -- conveniences -----------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], **kw) -> list[Completion]:
        want_lp = kw.pop("logprobs", False)
        out = [Completion("", [], "length", len(p), [] if want_lp else None, [] if want_lp else None)
               for p in prompts]
        for ev in self.stream_batch(prompts, **kw):
            c = out[ev.row]
            c.text += ev.text
            if ev.token_id is not None and ev.token_id != self.tok.eot_id:
                c.token_ids.append(ev.token_id)
            if want_lp and ev.logprob is not None:
                c.logprobs.append(ev.logprob)
                c.top_logprobs.append(ev.top_logprobs or {})
            if ev.finish_reason:
                c.finish_reason = ev.finish_reason
        return out

    def stream(self, prompt: list[int], **kw) -> Iterator[str]:
        for ev in self.stream_batch([prompt], **kw):
            if ev.text:
                yield ev.text

    @torch.inference_mode()
    def logprobs(self, sequences: list[list[int]], start: list[int], images: list[list] | None = None,
                 batch_size: int = 32) -> list[float]:
        """Sum of log p(seq[t] | seq[:t]) for t >= start[i], per sequence (right-padded batches)."""
        out: list[float] = []
        for b in range(0, len(sequences), batch_size):
            seqs, starts = sequences[b:b + batch_size], start[b:b + batch_size]
            imgs = images[b:b + batch_size] if images else None
            T = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), T), self.tok.pad_id, dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, :len(s)] = torch.tensor(s)
            ids = ids.to(self.device)
            flat = [im for row in (imgs or []) for im in row] or None
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                logits = self.model(inputs_embeds=self.model.embed(ids, flat))
            lp = F.log_softmax(logits.float(), -1)
            tgt = lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
            for i, s in enumerate(seqs):
                out.append(float(tgt[i, max(starts[i], 1) - 1:len(s) - 1].sum()))
        return out


@torch.inference_mode()
def naive_greedy(model, prompt: list[int], max_new_tokens: int, stop_id: int | None = None) -> list[int]:
    """Reference decoder: recompute the whole sequence for every token. Tests compare the engine to it."""
    dev = next(model.parameters()).device
    seq = list(prompt)
    out = []
    for _ in range(max_new_tokens):
        logits = mask_specials(model(idx=torch.tensor([seq], device=dev))[0, -1])
        t = int(logits.argmax())
        if t == stop_id:
            break
        out.append(t)
        seq.append(t)
    return out
