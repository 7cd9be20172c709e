import json
import math

import numpy as np
import pytest
import torch

from tinygpt4.data.pretrain_data import (
    PackedBatches,
    bits_per_byte,
    build_token_cache,
    iter_val_batches,
)
from tinygpt4.errors import UserError
from tinygpt4.tokenizer import train_tokenizer

DOCS = [f"Document {i}: the {['red', 'green', 'blue'][i % 3]} fox number {i * 7} runs home." for i in range(40)]
DOCS[5] = "Unicode too: 서울은 크다. 東京. ¿Qué tal? 🙂"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    f = d / "train.txt"
    f.write_text("\n\n".join(DOCS * 3), encoding="utf-8")
    return train_tokenizer([f], vocab_size=300)


class CountingTokenizer:
    """Delegates to a real tokenizer and counts encode_batch calls."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_batch(self, texts):
        self.calls += 1
        return self.inner.encode_batch(texts)


def write_corpus(path, docs):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    return path


def split_docs(tokens, bos):
    """Documents of a flat token array (each one starts with BOS)."""
    tokens = np.asarray(tokens)
    assert len(tokens) == 0 or tokens[0] == bos
    starts = np.flatnonzero(tokens == bos).tolist() + [len(tokens)]
    return [tokens[a + 1: b].tolist() for a, b in zip(starts[:-1], starts[1:])]


def test_cache_holds_every_document_after_bos(tmp_path, tok):
    corpus = write_corpus(tmp_path / "c.jsonl", DOCS)
    cache = build_token_cache([corpus], tok, tmp_path / "cache")
    assert cache.train.dtype == np.uint16 and cache.val.dtype == np.uint16
    assert cache.n_docs == len(DOCS) and cache.skipped == 0 and cache.bos_id == tok.bos_id
    assert 2 <= cache.n_val_docs < cache.n_docs // 2
    train_docs = split_docs(cache.train, tok.bos_id)
    val_docs = split_docs(cache.val, tok.bos_id)
    assert len(val_docs) == cache.n_val_docs and len(train_docs) + len(val_docs) == len(DOCS)
    decoded = [tok.decode(d) for d in train_docs + val_docs]
    assert sorted(decoded) == sorted(DOCS)
    val_text = [tok.decode(d) for d in val_docs]
    assert cache.val_bytes == sum(len(t.encode()) for t in val_text)
    assert cache.train_bytes + cache.val_bytes == sum(len(t.encode()) for t in DOCS)
    # the split depends only on document positions: a second corpus of the same size splits alike
    other = write_corpus(tmp_path / "o.jsonl", [d + " (copy)" for d in DOCS])
    cache2 = build_token_cache([other], tok, tmp_path / "cache")
    assert sorted(tok.decode(d) for d in split_docs(cache2.val, tok.bos_id)) == sorted(t + " (copy)" for t in val_text)


def test_cache_is_reused_and_keyed_by_content(tmp_path, tok):
    corpus = write_corpus(tmp_path / "c.jsonl", DOCS)
    counting = CountingTokenizer(tok)
    first = build_token_cache([corpus], counting, tmp_path / "cache")
    assert counting.calls > 0
    counting.calls = 0
    again = build_token_cache([corpus], counting, tmp_path / "cache")
    assert counting.calls == 0 and again.path == first.path
    assert np.array_equal(again.train, first.train) and np.array_equal(again.val, first.val)
    write_corpus(corpus, DOCS[:-1] + ["A changed last document."])
    changed = build_token_cache([corpus], counting, tmp_path / "cache")
    assert counting.calls > 0 and changed.path != first.path
    other_tok = train_tokenizer([corpus], vocab_size=280)
    assert build_token_cache([corpus], other_tok, tmp_path / "cache").path not in (first.path, changed.path)


def test_malformed_line_stops_unless_skipped(tmp_path, tok):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": \n{"text": "last"}\n')
    with pytest.raises(UserError, match=r"c\.jsonl:3: invalid JSON"):
        build_token_cache([corpus], tok, tmp_path / "cache")
    cache = build_token_cache([corpus], tok, tmp_path / "cache", skip_bad=True)
    assert cache.skipped == 1 and cache.n_docs == 3


def test_txt_and_directory_inputs(tmp_path, tok):
    (tmp_path / "d").mkdir()
    for i in range(4):
        (tmp_path / "d" / f"{i}.txt").write_text(DOCS[i])
    cache = build_token_cache([tmp_path / "d"], tok, tmp_path / "cache")
    assert cache.n_docs == 4 and cache.n_val_docs == 2
    assert int((cache.train == tok.bos_id).sum() + (cache.val == tok.bos_id).sum()) == 4


def test_packed_batches_shift_and_epochs():
    tokens = np.arange(1001, dtype=np.uint16)  # 1000 // 10 = 100 windows, identified by x[:, 0]
    it = PackedBatches(tokens, batch_size=7, seq_len=10, seed=3)
    seen = []
    for _ in range(100 // 7 + 1):
        x, y = it.next()
        assert x.shape == y.shape == (7, 10) and x.dtype == torch.long
        assert torch.equal(y, x + 1)
        seen.extend((x[:, 0] // 10).tolist())
    assert sorted(seen[:100]) == list(range(100))  # epoch 0 visits every window once
    assert seen[:100] != list(range(100))            # in shuffled order
    assert it.state_dict()["epoch"] == 1 and seen[100:] != seen[:5]


def test_state_dict_resume_gives_identical_batches():
    tokens = np.random.default_rng(0).integers(0, 300, size=5000).astype(np.uint16)
    a = PackedBatches(tokens, batch_size=4, seq_len=16, seed=1)
    for _ in range(70):  # past the first epoch boundary (312 windows / 4 per batch)
        a.next()
    state = json.loads(json.dumps(a.state_dict()))
    expected = [a.next() for _ in range(100)]
    b = PackedBatches(tokens, batch_size=4, seq_len=16, seed=1)
    b.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, (b.next() for _ in range(100))):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    c = PackedBatches(tokens, batch_size=4, seq_len=32, seed=1)
    with pytest.raises(UserError, match="seq_len"):
        c.load_state_dict(state)


def test_rank_shards_are_disjoint_and_in_step():
    tokens = np.arange(1001, dtype=np.uint16)
    world = 3
    its = [PackedBatches(tokens, batch_size=3, seq_len=10, seed=0, rank=r, world_size=world) for r in range(world)]
    per_rank = 100 // world
    shards = []
    for it in its:
        ids = []
        while len(ids) < per_rank:
            ids.extend((it.next()[0][:, 0] // 10).tolist())
        shards.append(set(ids[:per_rank]))
        assert len(shards[-1]) == per_rank
    assert not (shards[0] & shards[1]) and not (shards[0] & shards[2]) and not (shards[1] & shards[2])
    assert len({it.state_dict()["epoch"] for it in its}) == 1


def test_too_little_data_is_a_user_error():
    with pytest.raises(UserError, match="too little"):
        PackedBatches(np.arange(10, dtype=np.uint16), batch_size=2, seq_len=16)


def test_val_batches_score_every_token_once(tmp_path, tok):
    bos = 1
    val = np.array([bos, 10, 11, 12, bos, 20, 21, 22, 23, 24, bos, 30, 31], dtype=np.uint16)
    batches = iter_val_batches(val, batch_size=2, seq_len=4, bos_id=bos)
    assert batches == [] or all(x.shape == y.shape == (2, 4) for x, y in batches)
    assert len(batches) == 2  # ceil(12 / 4) = 3 windows -> 2 batches, last row padding
    targets = torch.cat([y.flatten() for _, y in batches])
    assert sorted(targets[targets >= 0].tolist()) == sorted(t for t in val[1:].tolist() if t != bos)
    for x, y in batches:
        rows = (y >= 0).any(dim=1)
        assert torch.equal(x[rows][:, 1:][y[rows][:, :-1] >= 0], y[rows][:, :-1][y[rows][:, :-1] >= 0])
    again = iter_val_batches(val, batch_size=2, seq_len=4, bos_id=bos)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert len(iter_val_batches(val, batch_size=1, seq_len=4, max_batches=1)) == 1
    assert iter_val_batches(np.array([bos], dtype=np.uint16), 2, 4) == []


def test_bits_per_byte():
    assert bits_per_byte(math.log(2), 100, 100) == pytest.approx(1.0)
    assert bits_per_byte(math.log(2) * 2, 50, 100) == pytest.approx(1.0)
