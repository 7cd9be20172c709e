"""Batched generation with a KV cache: sampling, stop tokens and strings, UTF-8-safe streaming, logprobs.

A fixed set of prompts is prefilled together and decoded until every row has finished; the prefill, the
decode step and the sampler are the shared core in `tinygpt4.decoding`, which the server's continuous batcher
uses too.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tinygpt4.decoding import (
    decode_step,
    log_probs,
    mask_specials,
    prefill,
    sample_next,
    seeded_generator,
    token_logprob,
)
from tinygpt4.errors import UserError
from tinygpt4.runtime import autocast, compute_dtype
from tinygpt4.stops import StopText
from tinygpt4.tokenizer import Tokenizer


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


class Engine:
    def __init__(self, model, tokenizer: Tokenizer, dtype: torch.dtype | None = None):
        self.model = model.eval()
        self.tok = tokenizer
        self.device = next(model.parameters()).device
        self.dtype = dtype or compute_dtype(self.device)
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
        self._check(prompts, max_new_tokens)
        gen = seeded_generator(self.device, seed) if seed is not None and temperature > 0 else None
        flat_images = [im for row in (images or []) for im in row] or None
        pre = prefill(self.model, prompts, flat_images, pad_id=self.tok.pad_id, room=max_new_tokens,
                      device=self.device, dtype=self.dtype)
        logits, cache, next_pos = pre.logits, pre.cache, pre.next_pos
        rows = [_Row(codecs.getincrementaldecoder("utf-8")(errors="replace"), StopText(stop_strings))
                for _ in range(len(prompts))]
        active = torch.arange(len(prompts))  # original row index of each cache row
        for step in range(max_new_tokens):
            logits = mask_specials(logits)
            nxt = sample_next(logits, temperature, top_k, top_p, gen)
            lp = log_probs(logits)
            last = step == max_new_tokens - 1
            keep = []
            for j, r_idx in enumerate(active.tolist()):
                t = int(nxt[j])
                yield self._event(rows[r_idx], r_idx, t, token_logprob(lp[j], t, top_logprobs), last, should_stop)
                if not rows[r_idx].done:
                    keep.append(j)
            if not keep:
                return
            if len(keep) < len(active):
                sel = torch.tensor(keep, device=self.device)
                cache.select(sel)
                nxt, next_pos, active = nxt[sel], next_pos[sel], active[torch.tensor(keep)]
            logits = decode_step(self.model, cache, nxt, next_pos, True, self.dtype)
            next_pos = next_pos + 1

    def _check(self, prompts: list[list[int]], max_new_tokens: int) -> None:
        if any(len(p) == 0 for p in prompts):
            raise UserError("empty prompt")
        P = max(len(p) for p in prompts)
        if P + max_new_tokens > self.max_len:
            raise UserError(f"prompt ({P} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
                            f"context of {self.max_len} tokens")

    def _event(self, row: _Row, r_idx: int, t: int, logprob: tuple[float, dict[int, float] | None],
               last: bool, should_stop) -> StepEvent:
        """Feed one sampled token to its row's text pipeline (UTF-8, stop strings) and describe what the
        caller sees; marks the row done when this is its last event."""
        tok_lp, tops = logprob
        if t == self.tok.eot_id:
            row.done = True
            tail, hit = row.stops.feed(row.decoder.decode(b"", final=True))
            tail = tail if hit else tail + row.stops.flush()
            row.text += tail
            return StepEvent(r_idx, tail, t, "stop", tok_lp, tops)
        row.ids.append(t)
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
        row.done = finish is not None
        return StepEvent(r_idx, piece, t, finish, tok_lp, tops)

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
            with autocast(self.device, self.dtype):
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
