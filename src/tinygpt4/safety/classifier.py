"""The learned grader's model: a fastText-style classifier of (prompt, response) pairs.

Text becomes hashed features with no tokenizer: lowercased word unigrams and bigrams plus character 3-5-grams
(so Korean and Japanese, written without spaces, still get sub-word features). The prompt (the last user turn,
and earlier user turns under a different salt) and the response are hashed into separate tables, each averaged
by an EmbeddingBag; a small MLP over [prompt, response, prompt-type embedding, hand-written cues] feeds the
twelve rubric propositions (sigmoids), and a head on the prompt alone gives the prompt type (softmax). The
A-D class is not learned separately: the rubric defines it from the propositions and the prompt type, so the
grader computes it from them (graders.rubric_class_probs), and class and propositions always agree.

Each clause of the response is also encoded on its own and max-pooled (a lecture clause is not averaged away
by the refusal next to it), and a few shape features say how long the response is and how much it takes up
from the request (an answer names what was asked about; a refusal, a lecture or a change of subject does not).
Training leaves out single response n-grams at random, so no one n-gram of a training wording decides a
proposition, and `members` nets trained on different batches are averaged.

The prompt-type input has an "unknown" slot that training uses at random, so one model grades both when the
caller knows the prompt's type (the RL reward) and when it does not (moderation). The response's n-grams are
hidden now and then so the model also learns what the cues say; on wordings it never saw, the cues carry it.

Saved as model.safetensors + config.json, both written atomically, and read back with safetensors only.
"""

from __future__ import annotations

import difflib
import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_bytes, atomic_write_text
from tinygpt4.safety import rubric

FORMAT = "tinygpt4-grader"
PROMPT_TYPES = rubric.PROMPT_TYPES
CLASSES = rubric.CLASSES
PROPOSITIONS = rubric.PROPOSITION_NAMES
UNKNOWN_TYPE = len(PROMPT_TYPES)  # the prompt-type input's "not given" slot

_WORD = re.compile(r"\w+")
# A clause ends at sentence punctuation or a comma; "I'm sorry, but I can't help. You should be ashamed." is
# three clauses, each read on its own as well as the whole.
_CLAUSE_END = re.compile(r"(?<=[.!?;:,。！？；：、，])\s*")
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x100000001B3)
# Salts keep the feature kinds apart inside one table (a word and a character n-gram never share a hash).
_SALT_LAST, _SALT_EARLIER, _SALT_RESPONSE = 1, 2, 3


@dataclass
class ClassifierConfig:
    buckets: int = 1 << 16  # hashed rows per table (prompt, response)
    dim: int = 48
    hidden: int = 128
    max_chars: int = 2000  # characters of each text that are hashed (long tails add little and cost time)
    min_n: int = 3
    max_n: int = 5
    cues: list[str] = field(default_factory=list)  # names of hand-written cue features (graders.regex_cues)
    clauses: bool = False  # also encode each clause of the response on its own (max-pooled); see Member
    max_clauses: int = 12
    members: int = 1  # independently trained nets whose probabilities are averaged


@dataclass
class TrainConfig:
    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-3  # the MLP
    emb_lr: float = 0.03  # the sparse embedding tables (slow: fast tables memorise the training wordings)
    type_dropout: float = 0.5  # how often the given prompt type is hidden (graded as "unknown")
    prompt_dropout: float = 0.1  # how often the whole prompt is hidden (propositions only are learned then)
    response_dropout: float = 0.4  # how often the response's n-grams are hidden (only the cues are left)
    ngram_dropout: float = 0.6  # each remaining response n-gram is left out at this rate
    seed: int = 0
    stats: dict = field(default_factory=dict)


# ---- features ---------------------------------------------------------------------------------------------

def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: neighbouring polynomial hashes land in unrelated buckets."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def _char_ngrams(texts: list[str], cfg: ClassifierConfig, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, owner): the character n-grams of all texts at once, and the index of the text each came
    from. The texts are joined with NUL separators and a window that spans one is dropped."""
    joined = "\x00".join(f" {t[:cfg.max_chars].lower().replace(chr(0), chr(32))} " for t in texts)
    cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    sep = cp == 0
    seps_before = np.concatenate([[0], np.cumsum(sep)])
    hashes, owners = [], []
    h = np.zeros(len(cp), dtype=np.uint64)
    for n in range(1, cfg.max_n + 1):  # h[i] = hash of cp[i:i+n], grown one character at a time
        h = h[: len(cp) - n + 1] * _POLY + cp[n - 1:]
        if n < cfg.min_n:
            continue
        start = np.arange(len(h))
        ok = seps_before[start + n] == seps_before[start]
        hashes.append(h[ok] ^ np.uint64(salt * 16 + n))
        owners.append(seps_before[start[ok]])
    if not hashes:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(hashes), np.concatenate(owners).astype(np.int64)


class _WordHasher:
    """crc32 of each word, memoised (the same words recur across thousands of responses)."""

    def __init__(self):
        self.cache: dict[str, int] = {}

    def __call__(self, text: str, cfg: ClassifierConfig, salt: int) -> np.ndarray:
        words = _WORD.findall(text[: cfg.max_chars].lower())
        if len(self.cache) > 1_000_000:
            self.cache.clear()
        ids = np.array([self.cache.get(w) or self.cache.setdefault(w, zlib.crc32(w.encode()) | 1) for w in words],
                       dtype=np.uint64)
        bigrams = (ids[:-1] << np.uint64(32)) | ids[1:]
        return np.concatenate([ids, bigrams]) ^ np.uint64(salt * 16)


def _bags(sources: list[tuple[np.ndarray, np.ndarray]], n: int, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs (ids, offsets) for n texts from (hashes, owner) arrays."""
    hashes = np.concatenate([s[0] for s in sources])
    owner = np.concatenate([s[1] for s in sources])
    order = np.argsort(owner, kind="stable")
    ids = (_mix(hashes[order]) % np.uint64(buckets)).astype(np.int64)
    counts = np.bincount(owner, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(offsets)


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


def overlap(prompt: str, response: str, limit: int = 300) -> tuple[float, float]:
    """How much the response takes up from the request: the longest common substring (scaled, capped at 1)
    and the share of the response's character trigrams found in the request. An answer names what was
    asked about; a refusal, a lecture or a change of subject mostly does not."""
    a, b = (" ".join(t[:limit].lower().split()) for t in (prompt, response))
    if not a or not b:
        return 0.0, 0.0
    m = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    tb = _trigrams(b)
    return min(1.0, m.size / 12), len(tb & _trigrams(a)) / max(1, len(tb))


SHAPE = ("clauses", "length", "common_substring", "shared_trigrams")  # GraderNet's response-shape inputs

CueFn = Callable[[str, str], list[float]]  # (last user text, response) -> one value per cfg.cues name


class Featurizer:
    def __init__(self, cfg: ClassifierConfig, cue_fn: CueFn | None = None):
        if cfg.cues and cue_fn is None:
            raise ValueError("this classifier was trained with cue features: pass their function")
        self.cfg, self.cue_fn = cfg, cue_fn
        self.words = _WordHasher()

    def _text_sources(self, texts: list[str], salt: int) -> list[tuple[np.ndarray, np.ndarray]]:
        sources = [_char_ngrams(texts, self.cfg, salt)]
        for i, t in enumerate(texts):
            w = self.words(t, self.cfg, salt)
            sources.append((w, np.full(len(w), i, dtype=np.int64)))
        return sources

    def clauses(self, responses: list[str]) -> tuple[list[str], np.ndarray]:
        """Each response's clauses (at most cfg.max_clauses) and the index of the response each came from."""
        texts, owner = [], []
        for i, r in enumerate(responses):
            parts = [c for c in _CLAUSE_END.split(r[: self.cfg.max_chars]) if c.strip()][: self.cfg.max_clauses]
            texts += parts
            owner += [i] * len(parts)
        return texts, np.asarray(owner, dtype=np.int64)

    def __call__(self, prompts: list[tuple[str, str]], responses: list[str]) -> tuple:
        """prompts: (last user text, earlier user text) per item. Returns the model's inputs but the prompt
        type: prompt bag (ids, offsets), response bag (ids, offsets), clause bag (ids, offsets) and the item
        of each clause, response shape [N, len(SHAPE)], cues [N, len(cfg.cues)]."""
        n = len(responses)
        p_src = self._text_sources([p[0] for p in prompts], _SALT_LAST)
        p_src += self._text_sources([p[1] for p in prompts], _SALT_EARLIER)
        p_ids, p_off = _bags(p_src, n, self.cfg.buckets)
        r_ids, r_off = _bags(self._text_sources(responses, _SALT_RESPONSE), n, self.cfg.buckets)
        texts, owner = self.clauses(responses) if self.cfg.clauses else ([], np.zeros(0, np.int64))
        c_ids, c_off = _bags(self._text_sources(texts, _SALT_RESPONSE), len(texts), self.cfg.buckets) if texts \
            else (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
        shape = np.zeros((n, len(SHAPE)))
        if self.cfg.clauses and n:
            shape[:, 0] = np.bincount(owner, minlength=n) / 4.0
            shape[:, 1] = np.log1p([len(r) for r in responses]) / 6.0
            shape[:, 2:] = [overlap(p[0], r) for p, r in zip(prompts, responses)]
        cues = [self.cue_fn(p[0], r) for p, r in zip(prompts, responses)] if self.cfg.cues else [[]] * n
        return (p_ids, p_off, r_ids, r_off, c_ids, c_off, torch.from_numpy(owner),
                torch.tensor(shape, dtype=torch.float32),
                torch.tensor(cues, dtype=torch.float32).reshape(n, len(self.cfg.cues)))


# ---- the model --------------------------------------------------------------------------------------------

class Member(nn.Module):
    """One net of the ensemble. Prompt and response bags, the prompt type and the cues feed a trunk and the proposition head. With
    cfg.clauses each clause of the response is also encoded on its own and max-pooled, so a proposition that
    one clause carries ("You should be ashamed.") is not averaged away by the others, and a clause reads
    the same wherever it stands."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.prompt = nn.EmbeddingBag(cfg.buckets, cfg.dim, mode="mean", sparse=True)
        self.response = nn.EmbeddingBag(cfg.buckets, cfg.dim, mode="mean", sparse=True)
        self.prompt_type = nn.Embedding(len(PROMPT_TYPES) + 1, cfg.dim)
        width = 3 * cfg.dim + len(cfg.cues)
        if cfg.clauses:
            self.clause = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.ReLU())
            width += cfg.hidden + len(SHAPE)
        self.trunk = nn.Sequential(nn.Linear(width, cfg.hidden), nn.ReLU(),
                                   nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU())
        self.props_head = nn.Linear(cfg.hidden, len(PROPOSITIONS))
        self.type_head = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.ReLU(),
                                       nn.Linear(cfg.hidden, len(PROMPT_TYPES)))

    def forward(self, p_ids, p_off, r_ids, r_off, c_ids, c_off, c_owner, shape, cues, prompt_type):
        """Logits: (propositions [B,12], prompt type [B,4])."""
        p = self.prompt(p_ids, p_off)
        parts = [p, self.response(r_ids, r_off), self.prompt_type(prompt_type), cues]
        if self.cfg.clauses:
            h = self.clause(self.response(c_ids, c_off))
            pooled = torch.zeros(len(p), h.shape[1], dtype=h.dtype)  # a response without clauses reads 0
            if len(h):
                pooled = pooled.scatter_reduce(0, c_owner[:, None].expand(-1, h.shape[1]), h, "amax",
                                               include_self=False)
            parts += [pooled, shape]
        h = self.trunk(torch.cat(parts, dim=-1))
        return self.props_head(h), self.type_head(p)


class GraderNet(nn.Module):
    """cfg.members nets, each trained on its own draw of batches; their probabilities are averaged (an
    ensemble varies less from seed to seed on wordings none of them saw)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(Member(cfg) for _ in range(max(1, cfg.members)))

    def forward(self, *inputs):
        """Logits of the members' mean probabilities: (propositions [B,12], prompt type [B,4])."""
        if len(self.members) == 1:
            return self.members[0](*inputs)
        outs = [m(*inputs) for m in self.members]
        props = torch.stack([torch.sigmoid(o[0]) for o in outs]).mean(0).clamp(1e-6, 1 - 1e-6)
        ptype = torch.stack([F.softmax(o[1], -1) for o in outs]).mean(0)
        return torch.logit(props), torch.log(ptype.clamp_min(1e-12))


def build_member(cfg: ClassifierConfig, seed: int = 0) -> Member:
    torch.manual_seed(seed)
    net = Member(cfg)
    with torch.no_grad():  # small rows: an average of many n-grams starts near zero, as in fastText
        for table in (net.prompt, net.response):
            table.weight.uniform_(-1.0 / cfg.dim, 1.0 / cfg.dim)
    return net


@torch.inference_mode()
def predict(net: GraderNet, feats, prompt_types: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities: propositions [N,12], prompt types [N,4]."""
    net.eval()
    props, ptype = net(*feats, torch.tensor(prompt_types, dtype=torch.long))
    return torch.sigmoid(props).numpy(), F.softmax(ptype, -1).numpy()


# ---- training ---------------------------------------------------------------------------------------------

def _starts_counts(off: torch.Tensor, total: int) -> tuple[np.ndarray, np.ndarray]:
    off = off.numpy()
    return off, np.diff(np.concatenate([off, [total]])).astype(np.int64)


def _gather(ids: np.ndarray, starts: np.ndarray, counts: np.ndarray, drop: float = 0.0,
            rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs for the bags that start at `starts` with `counts` ids each; with drop, each id is
    left out at that rate (a bag keeps at least its first id)."""
    parts = [ids[s:s + c] for s, c in zip(starts, counts)]
    if drop and rng is not None:
        parts = [p[(rng.random(len(p)) >= drop) | (np.arange(len(p)) == 0)] for p in parts]
        counts = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return torch.from_numpy(np.concatenate(parts) if parts else ids[:0]), torch.from_numpy(offsets)


@dataclass
class Examples:
    """Labelled training examples, featurised once: flat ids with per-bag start and count; the clauses of
    item i are clause bags first_clause[i] .. first_clause[i] + n_clauses[i] - 1."""
    p_ids: np.ndarray
    p_start: np.ndarray
    p_count: np.ndarray
    r_ids: np.ndarray
    r_start: np.ndarray
    r_count: np.ndarray
    c_ids: np.ndarray
    c_start: np.ndarray
    c_count: np.ndarray
    first_clause: np.ndarray
    n_clauses: np.ndarray
    shape: torch.Tensor  # [N, 2]
    cues: torch.Tensor  # [N, len(cfg.cues)]
    props: torch.Tensor  # [N,12] float
    types: torch.Tensor  # [N] long

    def batch(self, idx: np.ndarray, no_prompt: np.ndarray, no_response: np.ndarray, drop: float = 0.0,
              rng: np.random.Generator | None = None) -> tuple:
        """The inputs of items idx, with the prompt's or the response's bags left empty where asked, and each
        response n-gram left out at the rate drop."""
        n_cl = np.where(no_response, 0, self.n_clauses[idx])
        clause = np.concatenate([np.arange(f, f + k) for f, k in zip(self.first_clause[idx], n_cl)]
                                or [np.zeros(0, np.int64)]).astype(np.int64)
        owner = torch.from_numpy(np.repeat(np.arange(len(idx)), n_cl))
        idx_t = torch.from_numpy(idx)
        shape = self.shape[idx_t].clone()
        shape[torch.from_numpy(no_prompt), 2:] = 0.0  # no request, nothing taken up from it
        return (*_gather(self.p_ids, self.p_start[idx], np.where(no_prompt, 0, self.p_count[idx])),
                *_gather(self.r_ids, self.r_start[idx], np.where(no_response, 0, self.r_count[idx]), drop, rng),
                *_gather(self.c_ids, self.c_start[clause], self.c_count[clause], drop, rng), owner,
                shape, self.cues[idx_t])


def make_examples(featurizer: Featurizer, prompts: list[tuple[str, str]], responses: list[str],
                  props: list[list[float]], types: list[str]) -> Examples:
    p_ids, p_off, r_ids, r_off, c_ids, c_off, owner, shape, cues = featurizer(prompts, responses)
    n_clauses = np.bincount(owner.numpy(), minlength=len(responses)).astype(np.int64)
    first_clause = np.concatenate([[0], np.cumsum(n_clauses)[:-1]]).astype(np.int64)
    return Examples(p_ids.numpy(), *_starts_counts(p_off, len(p_ids)), r_ids.numpy(),
                    *_starts_counts(r_off, len(r_ids)), c_ids.numpy(), *_starts_counts(c_off, len(c_ids)),
                    first_clause, n_clauses, shape, cues, torch.tensor(props, dtype=torch.float32),
                    torch.tensor([PROMPT_TYPES.index(t) for t in types]))


def train(ex: Examples, cfg: ClassifierConfig, tc: TrainConfig) -> GraderNet:
    """Each member in turn, with its own seed (initialisation, batches, dropout)."""
    t0, net = time.perf_counter(), GraderNet(cfg)
    trained = [_train_member(build_member(cfg, tc.seed + 1000 * i), ex, tc, tc.seed + 1000 * i)
               for i in range(len(net.members))]
    net.members = nn.ModuleList(m for m, _ in trained)
    tc.stats.update(seconds=round(time.perf_counter() - t0, 3), items=len(ex.types),
                    final_loss=round(float(np.mean([loss for _, loss in trained])), 4))
    return net.eval()


def _train_member(net: Member, ex: Examples, tc: TrainConfig, seed: int) -> tuple[Member, float]:
    """Minibatch training of both heads at once; the embedding tables take sparse Adam steps. Returns the
    net and its last batch's loss."""
    sparse = [net.prompt.weight, net.response.weight]
    dense = [p for p in net.parameters() if all(p is not s for s in sparse)]
    opt_sparse = torch.optim.SparseAdam(sparse, lr=tc.emb_lr)
    opt_dense = torch.optim.AdamW(dense, lr=tc.lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    n = len(ex.types)
    net.train()
    for step in range(tc.steps):
        for group in (*opt_sparse.param_groups, *opt_dense.param_groups):  # linear decay to 10%
            group["lr"] = group.setdefault("base_lr", group["lr"]) * (1 - 0.9 * step / max(1, tc.steps))
        idx = rng.choice(n, size=min(tc.batch_size, n), replace=False)
        idx_t = torch.from_numpy(idx)
        # Hide the prompt's type at random; hide the whole prompt now and then, so a response graded on its
        # own (toxicity of bare text) is not out of distribution; hide the response's n-grams now and then,
        # so the model learns what the cues say and leans on them for wordings it never saw; and leave out
        # single n-grams, so no one n-gram of a training wording decides a proposition alone.
        no_prompt = rng.random(len(idx)) < tc.prompt_dropout
        types = ex.types[idx_t].clone()
        types[torch.from_numpy((rng.random(len(idx)) < tc.type_dropout) | no_prompt)] = UNKNOWN_TYPE
        no_response = rng.random(len(idx)) < tc.response_dropout
        props, ptype = net(*ex.batch(idx, no_prompt, no_response, tc.ngram_dropout, rng), types)
        keep = torch.from_numpy(~no_prompt).float()  # without a prompt, its type is unknowable
        type_loss = F.cross_entropy(ptype, ex.types[idx_t], reduction="none")
        loss = (F.binary_cross_entropy_with_logits(props, ex.props[idx_t]) * len(PROPOSITIONS) / 4
                + (type_loss * keep).sum() / keep.sum().clamp(min=1))
        opt_sparse.zero_grad()
        opt_dense.zero_grad()
        loss.backward()
        opt_sparse.step()
        opt_dense.step()
    return net.eval(), float(loss.detach())


# ---- files ------------------------------------------------------------------------------------------------

def save(net: GraderNet, out_dir: str | Path, extra: dict | None = None) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", save_tensors(state, metadata={"format": FORMAT}))
    config = {"format": FORMAT, "classifier": asdict(net.cfg), "propositions": list(PROPOSITIONS),
              "classes": list(CLASSES), "prompt_types": list(PROMPT_TYPES), **(extra or {})}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2))


def is_classifier_dir(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file() and (Path(path) / "model.safetensors").is_file()


def load(model_dir: str | Path) -> tuple[GraderNet, dict]:
    d = Path(model_dir)
    if not is_classifier_dir(d):
        raise UserError(f"{d}: not a trained grader (needs config.json and model.safetensors)")
    try:
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{d / 'config.json'}: invalid JSON ({e})") from None
    if config.get("format") != FORMAT:
        raise UserError(f"{d}: config.json is not a {FORMAT} config (format {config.get('format')!r})")
    if config.get("propositions") != list(PROPOSITIONS) or config.get("classes") != list(CLASSES):
        raise UserError(f"{d}: trained on a different rubric; retrain it with `tinygpt4 grader train`")
    net = GraderNet(ClassifierConfig(**config["classifier"]))
    state = load_tensors((d / "model.safetensors").read_bytes())
    if not any(k.startswith("members.") for k in state):  # written before ensembles: one member
        state = {f"members.0.{k}": v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{d}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval(), config
