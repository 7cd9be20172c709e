"""Byte-level BPE tokenizer (HF `tokenizers`) with the chat's special tokens.

The saved `tokenizer.json` is a plain HF tokenizer file, so `transformers.PreTrainedTokenizerFast(
tokenizer_file=...)` loads it unchanged. Plain text is always encoded with special-token matching off,
so a user typing "<|eot|>" can never inject a control token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from tinygpt4.data.readers import iter_pretrain_texts
from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_text

SPECIALS = ["<|pad|>", "<|bos|>", "<|eot|>", "<|system|>", "<|user|>", "<|assistant|>", "<|image|>"]
ROLES = ("system", "user", "assistant")

# GPT-4's (cl100k) split pattern: letters of any script stay together, so Hangul and kana words become
# merge candidates instead of raw bytes. Unlike cl100k, every digit is its own token (as in PaLM and LLaMA):
# numbers then share digit embeddings, which is what lets a small model learn arithmetic on unseen operands.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the character ByteLevel uses for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Tokenizer:
    """A trained tokenizer plus the ids of its special tokens."""

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.hf.encode_special_tokens = True  # plain text never produces a special id
        ids = [hf.token_to_id(s) for s in SPECIALS]
        if ids != list(range(len(SPECIALS))):
            raise UserError(f"tokenizer lacks tinygpt4's special tokens {SPECIALS} at ids 0..{len(SPECIALS) - 1}")
        (self.pad_id, self.bos_id, self.eot_id, self.system_id, self.user_id, self.assistant_id,
         self.image_id) = ids
        self.role_ids = {"system": self.system_id, "user": self.user_id, "assistant": self.assistant_id}
        self.n_special = len(SPECIALS)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise UserError(f"no tokenizer at {path} (expected a tokenizer.json or a folder holding one)")
        try:
            return cls(HFTokenizer.from_file(str(p)))
        except Exception as e:  # the HF error text is informative but multi-line
            raise UserError(f"{p}: not a valid tokenizer file ({str(e).splitlines()[0]})") from None

    def to_str(self) -> str:
        return self.hf.to_str()

    def save(self, out_dir: str | os.PathLike) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "tokenizer.json"
        atomic_write_text(path, self.to_str())
        return path

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode([int(i) for i in ids if i >= self.n_special], skip_special_tokens=True)

    @cached_property
    def _token_bytes(self) -> list[bytes]:
        dec = _byte_decoder()
        table = []
        for i in range(self.vocab_size):
            tok = self.hf.id_to_token(i) or ""
            if i < self.n_special:
                table.append(b"")
            else:
                table.append(bytes(dec[c] for c in tok if c in dec))
        return table

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes a token stands for (streaming decodes these incrementally, so no UTF-8 char splits)."""
        return self._token_bytes[int(token_id)]


def _new_hf_tokenizer() -> HFTokenizer:
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer_from_iterator(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    min_vocab = len(SPECIALS) + 256
    if vocab_size < min_vocab:
        raise UserError(f"--vocab-size must be at least {min_vocab} (special tokens + 256 bytes)")
    tok = _new_hf_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tok)


def train_tokenizer(files: list[str | os.PathLike], vocab_size: int, max_chars: int | None = None) -> Tokenizer:
    """Train on text/JSONL/Parquet files (read by the shared pretraining readers)."""
    def texts() -> Iterator[str]:
        seen = 0
        for t in iter_pretrain_texts([str(f) for f in files]):
            yield t
            seen += len(t)
            if max_chars is not None and seen >= max_chars:
                return

    return train_tokenizer_from_iterator(texts(), vocab_size)


def bytes_per_token(tok: Tokenizer, texts: Iterable[str]) -> float:
    n_bytes = n_tok = 0
    for t in texts:
        n_bytes += len(t.encode("utf-8"))
        n_tok += len(tok.encode(t))
    return n_bytes / max(n_tok, 1)


# ---- CLI -------------------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer", description="Train a byte-level BPE "
                       "tokenizer on text / JSONL (text field) / Parquet (text column) files.")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="training files or folders")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write tokenizer.json into")
    p.add_argument("--max-chars", type=int, default=None, help="stop reading after this many characters")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    for f in args.input:
        if not Path(f).exists():
            raise UserError(f"input not found: {f}")
    tok = train_tokenizer(args.input, args.vocab_size, max_chars=args.max_chars)
    path = tok.save(args.out)
    report = {"vocab_size": tok.vocab_size, "path": str(path)}
    samples = language_samples(args.input)
    for lang, texts in samples.items():
        report[f"bytes_per_token_{lang}"] = round(bytes_per_token(tok, texts), 3)
    print(json.dumps(report))
    return 0


def language_samples(files: list[str], per_lang: int = 200) -> dict[str, list[str]]:
    """A few texts per language from JSONL inputs that carry a `lang` field (the built-in world's do)."""
    out: dict[str, list[str]] = {}
    for f in files:
        p = Path(f)
        paths = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
        for path in paths:
            if path.suffix != ".jsonl":
                continue
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    lang = rec.get("lang") if isinstance(rec, dict) else None
                    if isinstance(lang, str) and len(out.setdefault(lang, [])) < per_lang:
                        out[lang].append(rec.get("text", ""))
    return out
