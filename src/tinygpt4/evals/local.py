"""A tinygpt4 checkpoint folder as a LanguageModel.

Log-likelihoods are computed in as few forward passes as possible:

* Requests that share a context (the four options of a question) share one copy of it: each
  continuation is its own segment that attends to the context and to itself but not to the other
  segments, with positions continuing from the end of the context. A continuation of one token needs
  no segment at all (the context's last logits score it), so the letter formulation costs one context
  per question.
* Contexts that share a long token prefix (a subject's few-shot examples) share it too: a row holds the
  prefix once and then, for each context, its own remaining tokens and its continuation segments. This
  makes k-shot cost little more than 0-shot.
* Rows are sorted by length and packed into padded batches of about `batch_tokens` tokens, and the
  output head runs only at the positions that are scored.

Generation goes through the shared Engine (batched, KV cache), with the model's chat template.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from tinygpt4.chat import render_chat
from tinygpt4.checkpoint import load_model
from tinygpt4.engine import Engine
from tinygpt4.evals.protocol import Context, Message, Unsupported, has_images
from tinygpt4.runtime import autocast, compute_dtype


@dataclass
class _Row:
    """One sequence of the batch: a small tree of token runs laid out depth-first. Each token belongs to a
    node; a token sees the tokens before it in its own node and all tokens of the node's ancestors."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)  # node of each token
    parents: list[int] = field(default_factory=list)  # parent of each node (-1 for a root)
    scores: list[tuple[int, int, int]] = field(default_factory=list)  # (request, row index, target token)

    def add_node(self, parent: int, tokens: list[int], first_position: int) -> int:
        node = len(self.parents)
        self.parents.append(parent)
        self.tokens += tokens
        self.positions += range(first_position, first_position + len(tokens))
        self.nodes += [node] * len(tokens)
        return node

    def visibility(self) -> torch.Tensor | None:
        """Bool [T, T] attention mask, or None when the row is one plain causal run."""
        if len(self.parents) <= 1:
            return None
        n = len(self.parents)
        anc = torch.eye(n, dtype=torch.bool)
        for i, p in enumerate(self.parents):  # parents come before children
            if p >= 0:
                anc[i] |= anc[p]
        node = torch.tensor(self.nodes, dtype=torch.long)
        T = len(self.tokens)
        return anc[node][:, node] & torch.ones(T, T, dtype=torch.bool).tril()


def _lcp(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LocalModel:
    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu", model=None, tokenizer=None,
                 batch_tokens: int = 2048, row_tokens: int = 512, min_shared_prefix: int = 16,
                 gen_batch: int = 32, name: str | None = None):
        if model is None:
            model, tokenizer = load_model(model_dir, device=device)
        self.model = model.eval()
        self.tok = tokenizer
        self.device = next(model.parameters()).device
        self.dtype = compute_dtype(self.device)
        cfg = model.config
        self.max_len = int(cfg.seq_len)
        vision = getattr(cfg, "vision", None)
        self.supports_images = vision is not None
        self.image_tokens = int(vision.tokens_per_image) if vision is not None else 0
        self.batch_tokens = batch_tokens
        self.row_tokens = row_tokens
        self.min_shared_prefix = min_shared_prefix
        self.gen_batch = gen_batch
        self.name = name or (str(model_dir) if model_dir is not None else type(model).__name__)
        self._engine = None

    # -- tokenisation ----------------------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        return self.max_len

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as a plain-text context (with <|bos|>)."""
        return [1 + len(ids) for ids in self.tok.encode_batch(list(texts))] if texts else []

    def _context_ids(self, contexts: list[Context]) -> list[list[int]]:
        texts = [c for c in contexts if isinstance(c, str)]
        encoded = iter(self.tok.encode_batch(texts) if texts else [])
        out = []
        for c in contexts:
            if isinstance(c, str):
                out.append([self.tok.bos_id, *next(encoded)])
            else:
                if has_images(c):
                    raise Unsupported("log-likelihood with images in the context")
                out.append(self._render(c)[0])
        return out

    def _render(self, messages: list[Message], max_len: int | None = None) -> tuple[list[int], list]:
        r = render_chat(messages, self.tok, image_tokens=self.image_tokens, add_generation_prompt=True,
                        max_len=max_len)
        return r.ids, r.images

    # -- log-likelihood --------------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[Context, str]]) -> list[float]:
        if not requests:
            return []
        keys: dict[str, int] = {}
        contexts: list[Context] = []
        for ctx, _ in requests:
            k = ctx if isinstance(ctx, str) else "\x00" + json.dumps(ctx, sort_keys=True)
            if k not in keys:
                keys[k] = len(contexts)
                contexts.append(ctx)
        ctx_ids = self._context_ids(contexts)
        conts = sorted({c for _, c in requests})
        cont_ids = dict(zip(conts, self.tok.encode_batch(conts)))
        groups: dict[int, dict[str, list[int]]] = {}  # context -> continuation -> request indices
        for i, (ctx, cont) in enumerate(requests):
            k = ctx if isinstance(ctx, str) else "\x00" + json.dumps(ctx, sort_keys=True)
            groups.setdefault(keys[k], {}).setdefault(cont, []).append(i)
        parts: list[tuple[list[int], list[tuple[list[int], int]]]] = []  # (context, [(continuation, id)])
        fanout: list[list[int]] = []  # unique (context, continuation) -> the requests asking for it
        for g, by_cont in groups.items():
            conts = []
            for cont, reqs in by_cont.items():
                conts.append((cont_ids[cont][: self.max_len - 1], len(fanout)))
                fanout.append(reqs)
            longest = max(len(c) for c, _ in conts)
            ctx = ctx_ids[g][-max(1, self.max_len - max(0, longest - 1)):]  # keep the end of a long context
            parts.append((ctx, conts))
        sums = self._score(self._pack(parts), len(fanout))
        out = [0.0] * len(requests)
        for u, reqs in enumerate(fanout):
            for i in reqs:
                out[i] = sums[u]
        return out

    def _pack(self, parts: list[tuple[list[int], list[tuple[list[int], int]]]]) -> list[_Row]:
        """Rows for (context, continuations) parts. Contexts that share a long token prefix (the few-shot
        examples of one subject) are clustered; a row holds the shared prefix once, then per context its
        remaining tokens, then per continuation a segment without its last token."""
        parts = sorted(parts, key=lambda p: p[0])
        clusters: list[tuple[list[int], list]] = []
        for part in parts:
            if clusters:
                prefix = clusters[-1][0]
                shared = _lcp(prefix, part[0])
                # Join only if most of the cluster's prefix stays shared: contexts that agree on a header
                # alone must not pull apart clusters that share whole few-shot blocks.
                if shared >= max(self.min_shared_prefix, 3 * len(prefix) // 4):
                    clusters[-1] = (clusters[-1][0][:shared], clusters[-1][1] + [part])
                    continue
            clusters.append((part[0], [part]))
        rows: list[_Row] = []
        row_budget = max(self.row_tokens, self.max_len)
        for prefix, members in clusters:
            if len(members) == 1:  # nothing shared: the whole context is the root
                prefix = members[0][0]
            row = None
            for ctx, conts in members:
                rest = ctx[len(prefix):]
                size = len(rest) + sum(len(c) - 1 for c, _ in conts)
                if row is None or (len(row.tokens) + size > row_budget and len(row.parents) > 1):
                    row = _Row()
                    row.add_node(-1, prefix, 0)
                    rows.append(row)
                base = len(prefix)
                node = row.add_node(0, rest, base) if rest else 0
                # the context's last token predicts each continuation's first
                last = len(row.tokens) - 1 if rest else base - 1
                c = base + len(rest)
                for cont, uid in conts:
                    if not cont:
                        continue
                    start = len(row.tokens)
                    if len(cont) > 1:
                        row.add_node(node, cont[:-1], c)
                    row.scores.append((uid, last, cont[0]))
                    row.scores += [(uid, start + t, cont[t + 1]) for t in range(len(cont) - 1)]
        return rows

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        """Every token of each text (after <|bos|>), in windows of the model's length that overlap by half,
        each token scored once with at least half a window of context."""
        limit, stride = self.max_len, max(1, self.max_len // 2)
        rows: list[_Row] = []
        for i, ids in enumerate(self.tok.encode_batch(list(texts)) if texts else []):
            toks = [self.tok.bos_id, *ids]
            a = 1  # first target index not yet scored
            while a < len(toks):
                b = min(len(toks), a + (limit if a == 1 else stride))
                s = max(0, b - 1 - limit)
                window = toks[s:b - 1]
                row = _Row()
                row.add_node(-1, window, 0)
                row.scores = [(i, t - 1 - s, toks[t]) for t in range(a, b)]
                rows.append(row)
                a = b
        return self._score(rows, len(texts))

    @torch.no_grad()
    def _score(self, rows: list[_Row], n: int) -> list[float]:
        sums = [0.0] * n
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r].tokens))
        batch: list[_Row] = []
        for r in order:
            row = rows[r]
            width = max([len(row.tokens)] + [len(b.tokens) for b in batch])
            if batch and width * (len(batch) + 1) > self.batch_tokens:
                self._forward(batch, sums)
                batch = []
            batch.append(row)
        if batch:
            self._forward(batch, sums)
        return sums

    def _forward(self, batch: list[_Row], sums: list[float]) -> None:
        B, T = len(batch), max(len(r.tokens) for r in batch)
        pad = self.tok.pad_id
        idx = torch.full((B, T), pad, dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long)
        for b, r in enumerate(batch):
            n = len(r.tokens)
            idx[b, :n] = torch.tensor(r.tokens)
            pos[b, :n] = torch.tensor(r.positions)
        mask = None
        masks = [r.visibility() for r in batch]
        if any(m is not None for m in masks):
            # Right padding: a padding query sees only itself (a finite softmax row); no real token sees it.
            mask = torch.eye(T, dtype=torch.bool).repeat(B, 1, 1)
            for b, (r, m) in enumerate(zip(batch, masks)):
                n = len(r.tokens)
                mask[b, :n, :n] = m if m is not None else torch.ones(n, n, dtype=torch.bool).tril()
            mask = mask.unsqueeze(1).to(self.device)
        b_idx = torch.tensor([b for b, r in enumerate(batch) for _ in r.scores])
        t_idx = torch.tensor([t for r in batch for _, t, _ in r.scores])
        targets = torch.tensor([y for r in batch for _, _, y in r.scores], device=self.device)
        at = (b_idx.to(self.device), t_idx.to(self.device))  # the output head runs on the scored positions only
        with autocast(self.device, self.dtype):
            logits = self.model(idx.to(self.device), positions=pos.to(self.device), attn_mask=mask, logits_at=at)
        logp = F.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1).tolist()
        k = 0
        for r in batch:
            for req, _, _ in r.scores:
                sums[req] += logp[k]
                k += 1

    # -- generation ------------------------------------------------------------------------------------
    @property
    def engine(self):
        if self._engine is None:
            self._engine = Engine(self.model, self.tok)
        return self._engine

    def _run_engine(self, prompts: list[list[int]], images: list[list] | None, max_tokens: int,
                    stop: Sequence[str] | None, sampling: dict) -> list[str]:
        """Generate for every prompt, shortest first in batches of `gen_batch`. A seeded sampling run gives
        batch b the seed `seed + b`, so the same call draws the same samples every time."""
        out: list[str] = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        seed = sampling.get("seed")
        for b, a in enumerate(range(0, len(order), self.gen_batch)):
            chunk = order[a:a + self.gen_batch]
            kwargs = {"max_new_tokens": max_tokens, "stop_strings": tuple(stop or ()),
                      "temperature": sampling.get("temperature", 0.0), "top_p": sampling.get("top_p"),
                      "seed": None if seed is None else seed + b}
            if images is not None and any(images[i] for i in chunk):
                kwargs["images"] = [images[i] for i in chunk]
            done = self.engine.generate([prompts[i] for i in chunk], **kwargs)
            for i, c in zip(chunk, done):
                out[i] = _cut_at_stop(c.text, stop)
        return out

    def generate(self, conversations: Sequence[list[Message]], max_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, *, top_p: float | None = None, seed: int | None = None,
                 n: int = 1) -> list[str]:
        if not self.supports_images and any(has_images(c) for c in conversations):
            raise Unsupported("this checkpoint has no vision tower")
        prompts, images = [], []
        for conv in conversations:
            ids, imgs = self._render(conv, max_len=max(8, self.max_len - max_tokens))
            prompts += [ids] * n
            images += [imgs] * n
        sampling = {"temperature": temperature, "top_p": top_p, "seed": seed}
        return self._run_engine(prompts, images if self.supports_images else None, max_tokens, stop, sampling)

    def complete(self, prompts: Sequence[str], max_tokens: int = 64, stop: Sequence[str] | None = None, *,
                 temperature: float = 0.0, top_p: float | None = None, seed: int | None = None,
                 n: int = 1) -> list[str]:
        keep = max(8, self.max_len - max_tokens)
        ids = [[self.tok.bos_id, *p][-keep:] for p in self.tok.encode_batch(list(prompts))] if prompts else []
        sampling = {"temperature": temperature, "top_p": top_p, "seed": seed}
        return self._run_engine([p for p in ids for _ in range(n)], None, max_tokens, stop, sampling)


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    for s in stop or ():
        if s and s in text:
            text = text[: text.index(s)]
    return text

