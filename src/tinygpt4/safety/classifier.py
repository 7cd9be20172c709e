"""The learned grader's model: a fastText-style classifier of (prompt, response) pairs.

Text becomes hashed features with no tokenizer: lowercased word unigrams and bigrams plus character 3-5-grams
(so Korean and Japanese, written without spaces, still get sub-word features). The prompt (the last user turn,
and earlier user turns under a different salt) and the response are hashed into separate tables, each averaged
by an EmbeddingBag; a small MLP over [prompt, response, prompt-type embedding, hand-written cues] feeds the
twelve rubric propositions (sigmoids), and a head on the prompt alone gives the prompt type (softmax). The
A-D class is not learned separately: the rubric defines it from the propositions and the prompt type, so the
grader computes it from them (graders.rubric_class_probs), and class and propositions always agree.

The prompt-type input has an "unknown" slot that training uses at random, so one model grades both when the
caller knows the prompt's type (the RL reward) and when it does not (moderation). The response's n-grams are
hidden now and then so the model also learns what the cues say; on wordings it never saw, the cues carry it.

Saved as model.safetensors + config.json, both written atomically, and read back with safetensors only.
"""

from __future__ import annotations

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


@dataclass
class TrainConfig:
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3  # the MLP
    emb_lr: float = 0.1  # the sparse embedding tables: each row is seen rarely, so it steps further
    type_dropout: float = 0.5  # how often the given prompt type is hidden (graded as "unknown")
    prompt_dropout: float = 0.1  # how often the whole prompt is hidden (propositions only are learned then)
    response_dropout: float = 0.4  # how often the response's n-grams are hidden (only the cues are left)
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

    def __call__(self, prompts: list[tuple[str, str]], responses: list[str]):
        """prompts: (last user text, earlier user text) per item. Returns the model's inputs but the prompt
        type: prompt bag (ids, offsets), response bag (ids, offsets), cues [N, len(cfg.cues)]."""
        n = len(responses)
        p_src = self._text_sources([p[0] for p in prompts], _SALT_LAST)
        p_src += self._text_sources([p[1] for p in prompts], _SALT_EARLIER)
        p_ids, p_off = _bags(p_src, n, self.cfg.buckets)
        r_ids, r_off = _bags(self._text_sources(responses, _SALT_RESPONSE), n, self.cfg.buckets)
        cues = [self.cue_fn(p[0], r) for p, r in zip(prompts, responses)] if self.cfg.cues else [[]] * n
        return p_ids, p_off, r_ids, r_off, torch.tensor(cues, dtype=torch.float32).reshape(n, len(self.cfg.cues))


# ---- the model --------------------------------------------------------------------------------------------

class GraderNet(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.prompt = nn.EmbeddingBag(cfg.buckets, cfg.dim, mode="mean", sparse=True)
        self.response = nn.EmbeddingBag(cfg.buckets, cfg.dim, mode="mean", sparse=True)
        self.prompt_type = nn.Embedding(len(PROMPT_TYPES) + 1, cfg.dim)
        self.trunk = nn.Sequential(nn.Linear(3 * cfg.dim + len(cfg.cues), cfg.hidden), nn.ReLU(),
                                   nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU())
        self.props_head = nn.Linear(cfg.hidden, len(PROPOSITIONS))
        self.type_head = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.ReLU(),
                                       nn.Linear(cfg.hidden, len(PROMPT_TYPES)))

    def forward(self, p_ids, p_off, r_ids, r_off, cues, prompt_type):
        """Logits: (propositions [B,12], prompt type [B,4])."""
        p = self.prompt(p_ids, p_off)
        r = self.response(r_ids, r_off)
        h = self.trunk(torch.cat([p, r, self.prompt_type(prompt_type), cues], dim=-1))
        return self.props_head(h), self.type_head(p)


def build(cfg: ClassifierConfig, seed: int = 0) -> GraderNet:
    torch.manual_seed(seed)
    net = GraderNet(cfg)
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

@dataclass
class Examples:
    """Labelled training examples, featurised once: flat ids with per-item start and count."""
    p_ids: np.ndarray
    p_start: np.ndarray
    p_count: np.ndarray
    r_ids: np.ndarray
    r_start: np.ndarray
    r_count: np.ndarray
    cues: torch.Tensor  # [N, len(cfg.cues)]
    props: torch.Tensor  # [N,12] float
    types: torch.Tensor  # [N] long

    def batch(self, idx: np.ndarray, no_prompt: np.ndarray, no_response: np.ndarray):
        """The inputs of items idx, with the prompt's or the response's bag left empty where asked."""
        def gather(ids, starts, counts):
            parts = [ids[s:s + c] for s, c in zip(starts, counts)]
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            return torch.from_numpy(np.concatenate(parts)), torch.from_numpy(offsets)

        return (*gather(self.p_ids, self.p_start[idx], np.where(no_prompt, 0, self.p_count[idx])),
                *gather(self.r_ids, self.r_start[idx], np.where(no_response, 0, self.r_count[idx])),
                self.cues[torch.from_numpy(idx)])


def make_examples(featurizer: Featurizer, prompts: list[tuple[str, str]], responses: list[str],
                  props: list[list[float]], types: list[str]) -> Examples:
    p_ids, p_off, r_ids, r_off, cues = featurizer(prompts, responses)

    def starts_counts(ids, off):
        off = off.numpy()
        return off, np.diff(np.concatenate([off, [len(ids)]]))

    ps, pc = starts_counts(p_ids, p_off)
    rs, rc = starts_counts(r_ids, r_off)
    return Examples(p_ids.numpy(), ps, pc, r_ids.numpy(), rs, rc, cues, torch.tensor(props, dtype=torch.float32),
                    torch.tensor([PROMPT_TYPES.index(t) for t in types]))


def train(ex: Examples, cfg: ClassifierConfig, tc: TrainConfig) -> GraderNet:
    """Minibatch training of both heads at once; the embedding tables take sparse Adam steps."""
    net = build(cfg, tc.seed)
    sparse = [net.prompt.weight, net.response.weight]
    dense = [p for p in net.parameters() if all(p is not s for s in sparse)]
    opt_sparse = torch.optim.SparseAdam(sparse, lr=tc.emb_lr)
    opt_dense = torch.optim.AdamW(dense, lr=tc.lr, weight_decay=0.0)
    rng = np.random.default_rng(tc.seed)
    n = len(ex.types)
    t0, net = time.perf_counter(), net.train()
    for step in range(tc.steps):
        for group in (*opt_sparse.param_groups, *opt_dense.param_groups):  # linear decay to 10%
            group["lr"] = group.setdefault("base_lr", group["lr"]) * (1 - 0.9 * step / max(1, tc.steps))
        idx = rng.choice(n, size=min(tc.batch_size, n), replace=False)
        idx_t = torch.from_numpy(idx)
        # Hide the prompt's type at random; hide the whole prompt now and then, so a response graded on its
        # own (toxicity of bare text) is not out of distribution; hide the response's n-grams now and then,
        # so the model learns what the cues say and leans on them for wordings it never saw.
        no_prompt = rng.random(len(idx)) < tc.prompt_dropout
        types = ex.types[idx_t].clone()
        types[torch.from_numpy((rng.random(len(idx)) < tc.type_dropout) | no_prompt)] = UNKNOWN_TYPE
        no_response = rng.random(len(idx)) < tc.response_dropout
        props, ptype = net(*ex.batch(idx, no_prompt, no_response), types)
        keep = torch.from_numpy(~no_prompt).float()  # without a prompt, its type is unknowable
        type_loss = F.cross_entropy(ptype, ex.types[idx_t], reduction="none")
        loss = (F.binary_cross_entropy_with_logits(props, ex.props[idx_t]) * len(PROPOSITIONS) / 4
                + (type_loss * keep).sum() / keep.sum().clamp(min=1))
        opt_sparse.zero_grad()
        opt_dense.zero_grad()
        loss.backward()
        opt_sparse.step()
        opt_dense.step()
    tc.stats.update(seconds=round(time.perf_counter() - t0, 3), final_loss=round(float(loss.detach()), 4), items=n)
    return net.eval()


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
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{d}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval(), config
