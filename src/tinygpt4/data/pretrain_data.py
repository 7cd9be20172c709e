"""Pretraining data: a token cache built once per (corpus bytes, tokenizer), and packed batches.

Cache. Every document becomes `<|bos|> tokens...`, all documents concatenated into one flat array stored
as raw uint16 (uint32 for vocabularies over 65,536) and memory-mapped, so a corpus larger than RAM costs
nothing to open. The folder name is a hash of the files' bytes, the tokenizer's JSON and the split
settings: a changed file or tokenizer gives a new cache, an unchanged one is reused without tokenizing.
A few whole documents (chosen by a hash of their index, so the choice does not depend on their content)
form the validation split; the UTF-8 bytes of each split are counted so validation loss converts to bits
per byte: bpb = val_loss_nats * scored_tokens / (ln 2 * val_bytes) (see `bits_per_byte`).

Batches. The train array is cut into windows of seq_len + 1 tokens (stride seq_len); each epoch visits
the windows in a fresh order drawn from (seed, epoch). Under DDP rank r takes permutation[r::world_size],
trimmed so all ranks have the same number of windows per epoch and cross epoch boundaries together. The
position is two integers (epoch, index), so `state_dict()` / `load_state_dict()` resume exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tinygpt4.data.readers import TXT_DOC_CHARS, expand_pretrain_paths, iter_pretrain_texts
from tinygpt4.errors import UserError
from tinygpt4.runtime import default_mode

CACHE_VERSION = 1
ENCODE_CHUNK_CHARS = 4_000_000   # characters handed to encode_batch at a time
PROGRESS_MIN_BYTES = 32_000_000  # show a progress bar only for inputs at least this big


@dataclass
class TokenCache:
    train: np.ndarray      # flat token ids, each document preceded by bos_id (read-only memmap)
    val: np.ndarray
    train_bytes: int       # UTF-8 bytes of the documents in each split
    val_bytes: int
    n_docs: int
    skipped: int           # malformed lines skipped (only with skip_bad=True)
    n_val_docs: int = 0
    bos_id: int = 1
    path: Path | None = None  # the cache folder


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _tokenizer_identity(tokenizer) -> str:
    to_str = getattr(tokenizer, "to_str", None)
    if callable(to_str):
        return to_str()
    # Stand-ins without a serialisation: vocabulary size and class are the best identity available.
    return f"{type(tokenizer).__qualname__}:{tokenizer.vocab_size}:{tokenizer.bos_id}"


def cache_key(files: list[Path], tokenizer, settings: dict) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": CACHE_VERSION, **settings}, sort_keys=True).encode())
    ident = _tokenizer_identity(tokenizer).encode()
    h.update(len(ident).to_bytes(8, "little") + ident)
    for f in files:
        # the suffix decides how the bytes are parsed, so it is part of the content
        h.update(f.suffix.encode() + b"\0" + f.stat().st_size.to_bytes(8, "little"))
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _val_doc_ids(n_docs: int, val_fraction: float, min_val_docs: int) -> np.ndarray:
    """Sorted indices of the validation documents: the n_val documents whose index hashes lowest."""
    if n_docs < 2:
        return np.zeros(0, dtype=np.int64)
    n_val = min(max(min_val_docs, round(val_fraction * n_docs)), n_docs // 2)
    z = np.arange(n_docs, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)  # splitmix64 of the index
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.sort(np.argsort(z, kind="stable")[:n_val])


def _open_tokens(path: Path, dtype: np.dtype, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def _load_cache(d: Path) -> TokenCache:
    meta = json.loads((d / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    return TokenCache(
        train=_open_tokens(d / "train.bin", dtype, meta["train_tokens"]),
        val=_open_tokens(d / "val.bin", dtype, meta["val_tokens"]),
        train_bytes=meta["train_bytes"], val_bytes=meta["val_bytes"], n_docs=meta["n_docs"],
        skipped=meta["skipped"], n_val_docs=meta["n_val_docs"], bos_id=meta["bos_id"], path=d,
    )


def build_token_cache(paths: Iterable[str | os.PathLike] | str | os.PathLike, tokenizer,
                      cache_dir: str | os.PathLike, skip_bad: bool = False, *,
                      val_fraction: float = 0.02, min_val_docs: int = 2) -> TokenCache:
    """Tokenize the corpus into cache_dir/<hash>/ once, or reuse the cache if it already exists.

    Validation gets max(min_val_docs, round(val_fraction * n_docs)) documents, at most half of them, and
    none when there is only one document. Several DDP ranks may call this at once (the finished folder is
    renamed into place atomically), but it is cheaper to build on rank 0 and let the others wait.
    """
    files = expand_pretrain_paths(paths)
    settings = {"skip_bad": bool(skip_bad), "val_fraction": val_fraction, "min_val_docs": min_val_docs,
                "txt_doc_chars": TXT_DOC_CHARS}
    key = cache_key(files, tokenizer, settings)
    root = Path(cache_dir)
    final = root / key
    if (final / "meta.json").is_file():
        return _load_cache(final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}.", suffix=".tmp"))
    try:
        tmp.chmod(default_mode(directory=True))
        meta = _tokenize_into(tmp, files, tokenizer, skip_bad, val_fraction, min_val_docs)
        meta.update(key=key, sources=[str(f) for f in files], settings=settings)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a lost race with another builder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load_cache(final)


def _tokenize_into(out: Path, files: list[Path], tokenizer, skip_bad: bool, val_fraction: float,
                   min_val_docs: int) -> dict:
    """Tokenize every document into out/all.bin, then split it into out/train.bin and out/val.bin; returns
    the cache's meta (without the key and sources)."""
    dtype = token_dtype(tokenizer.vocab_size)
    all_path = out / "all.bin"
    stats: dict = {}
    doc_tokens, doc_bytes = _write_documents(all_path, files, tokenizer, dtype, skip_bad, stats)
    n_docs = len(doc_tokens)
    if n_docs == 0:
        raise UserError(f"no documents in {', '.join(str(f) for f in files)}")
    val_ids = _val_doc_ids(n_docs, val_fraction, min_val_docs)
    lens = np.frombuffer(doc_tokens, dtype=np.int64)
    nbytes = np.frombuffer(doc_bytes, dtype=np.int64)
    n_tokens = _split_documents(all_path, out, dtype, lens, val_ids)
    all_path.unlink()
    val_tokens = int(lens[val_ids].sum())
    val_bytes = int(nbytes[val_ids].sum())
    return {
        "dtype": dtype.name, "bos_id": int(tokenizer.bos_id), "vocab_size": int(tokenizer.vocab_size),
        "n_docs": n_docs, "n_val_docs": len(val_ids), "skipped": int(stats.get("skipped", 0)),
        "train_tokens": n_tokens - val_tokens, "val_tokens": val_tokens,
        "train_bytes": int(nbytes.sum()) - val_bytes, "val_bytes": val_bytes,
    }


def _write_documents(path: Path, files: list[Path], tokenizer, dtype: np.dtype, skip_bad: bool,
                     stats: dict) -> tuple[array, array]:
    """Every document as `<|bos|> tokens...`, concatenated into `path`; per document, its token count (BOS
    included) and its UTF-8 byte count."""
    bos = int(tokenizer.bos_id)
    total_bytes = sum(f.stat().st_size for f in files)
    bar = None
    if total_bytes >= PROGRESS_MIN_BYTES:
        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizing", dynamic_ncols=True)
    doc_tokens = array("q")
    doc_bytes = array("q")
    with open(path, "wb") as fh:
        def flush(texts: list[str]) -> None:
            pieces = []
            for text, ids in zip(texts, tokenizer.encode_batch(texts)):
                pieces.append((bos,))
                pieces.append(ids)
                doc_tokens.append(len(ids) + 1)
                doc_bytes.append(len(text.encode("utf-8")))
            fh.write(np.fromiter(itertools.chain.from_iterable(pieces), dtype=dtype).tobytes())
            if bar is not None:
                bar.update(sum(doc_bytes[-len(texts):]))

        chunk: list[str] = []
        chars = 0
        for text in iter_pretrain_texts(files, skip_bad=skip_bad, stats=stats):
            chunk.append(text)
            chars += len(text)
            if chars >= ENCODE_CHUNK_CHARS:
                flush(chunk)
                chunk, chars = [], 0
        if chunk:
            flush(chunk)
    if bar is not None:
        bar.close()
    return doc_tokens, doc_bytes


def _split_documents(all_path: Path, out: Path, dtype: np.dtype, lens: np.ndarray,
                     val_ids: np.ndarray) -> int:
    """Copy the runs of training documents between validation documents to out/train.bin, the validation
    documents to out/val.bin; returns the number of tokens in all."""
    starts = np.concatenate([[0], np.cumsum(lens)])
    src = np.memmap(all_path, dtype=dtype, mode="r", shape=(int(starts[-1]),))
    with open(out / "train.bin", "wb") as ft, open(out / "val.bin", "wb") as fv:
        prev = 0
        for i in val_ids:
            _copy(src, prev, int(starts[i]), ft)
            _copy(src, int(starts[i]), int(starts[i + 1]), fv)
            prev = int(starts[i + 1])
        _copy(src, prev, int(starts[-1]), ft)
    del src
    return int(starts[-1])


def _copy(src: np.ndarray, a: int, b: int, fh, step: int = 1 << 24) -> None:
    for s in range(a, b, step):
        fh.write(np.asarray(src[s:min(b, s + step)]).tobytes())


# ---- batches -----------------------------------------------------------------------------------------------

class PackedBatches:
    """Endless training batches (x, y) of shape [batch_size, seq_len], y = x shifted by one token."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.tokens = tokens
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.n_windows = max(len(tokens) - 1, 0) // self.seq_len
        self.windows_per_rank = self.n_windows // self.world_size
        if self.windows_per_rank == 0:
            raise UserError(f"too little training data: {len(tokens)} tokens give no window of {seq_len + 1} "
                            f"tokens for each of {world_size} rank(s)")
        self.epoch = 0
        self.pos = 0  # next window within this rank's share of the epoch
        self._order_epoch = -1
        self._order = np.zeros(0, dtype=np.int64)
        self._offsets = np.arange(self.seq_len + 1, dtype=np.int64)

    def _rank_order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._order = perm[self.rank::self.world_size][: self.windows_per_rank]
            self._order_epoch = epoch
        return self._order

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        picked = []
        need = self.batch_size
        while need:
            order = self._rank_order(self.epoch)
            take = order[self.pos: self.pos + need]
            picked.append(take)
            need -= len(take)
            self.pos += len(take)
            if self.pos == len(order):
                self.epoch += 1
                self.pos = 0
        starts = np.concatenate(picked) * self.seq_len
        w = torch.from_numpy(self.tokens[starts[:, None] + self._offsets].astype(np.int64))
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    __next__ = next

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "seq_len": self.seq_len,
                "rank": self.rank, "world_size": self.world_size, "n_tokens": len(self.tokens)}

    def load_state_dict(self, d: dict) -> None:
        for k in ("seq_len", "world_size", "n_tokens", "seed"):
            mine = self.state_dict()[k]
            if d.get(k) != mine:
                raise UserError(f"cannot resume the data position: saved {k}={d.get(k)} but this run has {mine}")
        if not 0 <= int(d["pos"]) < self.windows_per_rank:
            raise UserError(f"cannot resume the data position: pos {d['pos']} out of range")
        self.epoch, self.pos = int(d["epoch"]), int(d["pos"])


def iter_val_batches(val_tokens: np.ndarray, batch_size: int, seq_len: int, *, bos_id: int | None = None,
                     max_batches: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The validation set as a fixed list of (x, y) batches, every one [batch_size, seq_len].

    Windows run in order with stride seq_len, so each token after the first is a target exactly once;
    the tail window and tail rows are padded with x = 0, y = -1 (ignored by the loss), keeping shapes
    static for torch.compile. With bos_id given, targets equal to it (predicting a document's start) are
    ignored too, so the scored tokens are exactly the text the split's byte count measures. Sum the loss
    over scored targets (y >= 0) across batches for bits per byte; with max_batches the list covers only
    the split's beginning, so its byte count no longer matches.
    """
    n = len(val_tokens)
    if n < 2:
        return []
    n_windows = math.ceil((n - 1) / seq_len)
    if max_batches is not None:
        n_windows = min(n_windows, max_batches * batch_size)
    n_batches = math.ceil(n_windows / batch_size)
    rows = n_batches * batch_size
    x = np.zeros((rows, seq_len), dtype=np.int64)
    y = np.full((rows, seq_len), -1, dtype=np.int64)
    for w in range(n_windows):
        a = w * seq_len
        chunk = np.asarray(val_tokens[a: min(a + seq_len + 1, n)]).astype(np.int64)
        x[w, : len(chunk) - 1] = chunk[:-1]
        y[w, : len(chunk) - 1] = chunk[1:]
    if bos_id is not None:
        y[y == bos_id] = -1
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return [(xt[i: i + batch_size], yt[i: i + batch_size]) for i in range(0, rows, batch_size)]


def bits_per_byte(mean_loss_nats: float, scored_tokens: int, n_bytes: int) -> float:
    """Bits per UTF-8 byte from a mean token loss (nats) over scored_tokens tokens covering n_bytes bytes."""
    return mean_loss_nats * scored_tokens / (math.log(2) * n_bytes)
