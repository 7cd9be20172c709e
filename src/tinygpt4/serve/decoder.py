"""Continuous batching: rows join and leave a running KV-cache batch between decoding steps.

`Engine.stream_batch` decodes a fixed set of prompts; a server wants a new request to start at the next step
instead of after the slowest answer in front of it. This decoder shares the engine's prefill, decode step and
sampler (`tinygpt4.decoding`), so its cache layout too (rows share one write position, left padding is masked
through `valid`, each row has its own RoPE positions, so a row decodes exactly as it would alone), and
manages that cache as slots:

- a joining row is prefilled on its own (with any others joining at the same step), then its keys and values
  are written, right-aligned at the shared position, into the slot of a row that has finished; only when no
  slot is free (or its prompt is longer than the cache so far) is the cache rebuilt, with room to spare;
- a leaving row only frees its slot (masked out, its position reset); the cache is compacted when more than
  half of it is free, and columns no live row attends to are dropped whenever it is rebuilt.

So in steady serving, a request costs one prefill and a copy of its own prompt's keys and values, not a copy
of the whole cache. Each row samples with its own settings (temperature, top_p, and a per-request generator
when a seed is given, so a seeded answer does not depend on what else shares the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tinygpt4 import decoding
from tinygpt4.model.gpt import KVCache

HEADROOM = 64  # spare columns when the cache is rebuilt, so it is not rebuilt at every step


@dataclass
class RowSpec:
    key: int  # the caller's id for this row
    prompt: list[int]
    max_new: int
    images: list = field(default_factory=list)
    temperature: float = 0.0
    top_p: float | None = None
    generator: torch.Generator | None = None  # shared by the rows of one seeded request
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class Token:
    key: int
    token_id: int
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


class Decoder:
    def __init__(self, engine):
        self.model = engine.model
        self.tok = engine.tok
        self.max_len = engine.max_len
        self.device = engine.device
        self.dtype = engine.dtype
        self.cfg = engine.model.config
        self._reset()

    def _reset(self) -> None:
        self.cache: KVCache | None = None
        self.slots: list[RowSpec | None] = []  # cache row -> its row, None when free
        self.made: list[int] = []  # tokens generated so far, per slot
        self.last: torch.Tensor | None = None  # [slots] the token each slot feeds in next
        self.next_pos: torch.Tensor | None = None  # [slots] RoPE position of that token

    @property
    def rows(self) -> int:
        return sum(s is not None for s in self.slots)

    @property
    def specs(self) -> list[RowSpec]:
        return [s for s in self.slots if s is not None]

    def make_generator(self, seed: int) -> torch.Generator:
        return decoding.seeded_generator(self.device, seed)

    # -- joining ---------------------------------------------------------------------------------------
    @torch.inference_mode()
    def add(self, specs: list[RowSpec]) -> list[Token]:
        """Prefill new rows and place them in the running batch; returns each one's first token."""
        if not specs:
            return []
        for s in specs:
            if not s.prompt or len(s.prompt) + s.max_new > self.max_len:
                raise ValueError("prompt + max_new does not fit the context")
        flat_images = [im for s in specs for im in s.images] or None
        pre = decoding.prefill(self.model, [s.prompt for s in specs], flat_images, pad_id=self.tok.pad_id, room=0,
                      device=self.device, dtype=self.dtype)
        tokens, chosen = self._sample(pre.logits, specs)
        self._place(pre.cache, specs, chosen, pre.next_pos)
        return tokens

    def _place(self, new: KVCache, specs: list[RowSpec], last: torch.Tensor, next_pos: torch.Tensor) -> None:
        c = self.cache
        free = [i for i, s in enumerate(self.slots) if s is None]
        if c is None or new.pos > c.pos or len(free) < len(specs):
            self._rebuild(new, specs, last, next_pos)
            return
        lo = c.pos - new.pos  # right-align the prompts at the shared write position
        for j, (slot, spec) in enumerate(zip(free, specs)):
            c.k[:, slot, :, lo:c.pos] = new.k[:, j, :, :new.pos]
            c.v[:, slot, :, lo:c.pos] = new.v[:, j, :, :new.pos]
            c.valid[slot] = False
            c.valid[slot, lo:c.pos] = new.valid[j, :new.pos]
            self.slots[slot], self.made[slot] = spec, 1
            self.last[slot], self.next_pos[slot] = last[j], next_pos[j]
        self._reserve()

    def _rebuild(self, new: KVCache | None = None, specs: list[RowSpec] = (), last=None, next_pos=None) -> None:
        """A fresh cache holding the live rows (and any joining ones), without free slots or unused columns."""
        live = [i for i, s in enumerate(self.slots) if s is not None]
        old = self.cache
        first, old_pos = 0, 0
        if old is not None and live:
            old_pos = old.pos
            used = old.valid[live, :old_pos].any(0)
            first = int(used.int().argmax()) if bool(used.any()) else old_pos
        new_pos = new.pos if new is not None else 0
        pos = max(old_pos - first, new_pos)
        slots = [self.slots[i] for i in live] + list(specs)
        made = [self.made[i] for i in live] + [1] * len(specs)
        if not slots:
            self._reset()
            return
        remaining = max(s.max_new - m for s, m in zip(slots, made))
        cache = KVCache(self.cfg, len(slots), pos + max(1, remaining) + HEADROOM, self.device, self.dtype)
        n = len(live)
        if n:
            idx = torch.tensor(live, device=self.device)
            span = old_pos - first
            cache.k[:, :n, :, pos - span:pos] = old.k[:, idx, :, first:old_pos]
            cache.v[:, :n, :, pos - span:pos] = old.v[:, idx, :, first:old_pos]
            cache.valid[:n, pos - span:pos] = old.valid[idx, first:old_pos]
        if new is not None:
            cache.k[:, n:, :, pos - new_pos:pos] = new.k[:, :, :, :new_pos]
            cache.v[:, n:, :, pos - new_pos:pos] = new.v[:, :, :, :new_pos]
            cache.valid[n:, pos - new_pos:pos] = new.valid[:, :new_pos]
        cache.pos = pos
        parts_last = [self.last[live]] if n else []
        parts_pos = [self.next_pos[live]] if n else []
        if new is not None:
            parts_last.append(last)
            parts_pos.append(next_pos)
        self.cache, self.slots, self.made = cache, slots, made
        self.last, self.next_pos = torch.cat(parts_last), torch.cat(parts_pos)

    def _reserve(self) -> None:
        """Make sure every live row has room for the rest of its tokens."""
        c = self.cache
        need = c.pos + max(1, max(s.max_new - m for s, m in zip(self.slots, self.made) if s is not None))
        if need > c.max_len:
            self._rebuild()

    # -- decoding --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> list[Token]:
        """One token for every live row."""
        if not self.rows:
            return []
        self._reserve()
        alive = torch.tensor([s is not None for s in self.slots], device=self.device)
        logits = decoding.decode_step(self.model, self.cache, self.last, self.next_pos, alive, self.dtype)
        live = [i for i, s in enumerate(self.slots) if s is not None]
        specs = [self.slots[i] for i in live]
        if len(live) < len(self.slots):
            logits = logits[torch.tensor(live, device=self.device)]
        tokens, chosen = self._sample(logits, specs)
        self.last[live] = chosen
        self.next_pos = torch.where(alive, self.next_pos + 1, 0)
        for i in live:
            self.made[i] += 1
        return tokens

    def _sample(self, logits: torch.Tensor, specs: list[RowSpec]):
        """Per-row sampling: rows with the same settings (and generator) are sampled together."""
        logits = decoding.mask_specials(logits)
        chosen = torch.empty(len(specs), dtype=torch.long, device=logits.device)
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(specs):
            key = ("greedy",) if s.temperature <= 0 else (s.temperature, s.top_p, id(s.generator))
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            s = specs[idx[0]]
            if len(idx) == len(specs):
                chosen = decoding.sample_next(logits, s.temperature, None, s.top_p, s.generator)
            else:
                sel = torch.tensor(idx, device=logits.device)
                chosen[sel] = decoding.sample_next(logits[sel], s.temperature, None, s.top_p, s.generator)
        want = [i for i, s in enumerate(specs) if s.logprobs]
        lps: dict[int, tuple[float, dict | None]] = {}
        if want:
            lp = decoding.log_probs(logits[torch.tensor(want, device=logits.device)])
            for j, i in enumerate(want):
                lps[i] = decoding.token_logprob(lp[j], int(chosen[i]), specs[i].top_logprobs)
        ids = chosen.tolist()
        tokens = [Token(s.key, ids[i], *lps.get(i, (None, None))) for i, s in enumerate(specs)]
        return tokens, chosen

    # -- leaving ---------------------------------------------------------------------------------------
    @torch.inference_mode()
    def remove(self, keys: set[int]) -> None:
        """Free the slots of these rows; compact when more than half of the batch is free."""
        hit = False
        for i, s in enumerate(self.slots):
            if s is not None and s.key in keys:
                self.slots[i] = None
                self.cache.valid[i] = False
                hit = True
        if not hit:
            return
        live = self.rows
        if live == 0:
            self._reset()
        elif len(self.slots) - live > live:
            self._rebuild()
