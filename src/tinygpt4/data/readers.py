"""Readers for every public data format tinygpt4 consumes, shared by training and evals.

Each reader is one small function. Malformed input raises `UserError` whose message starts with
`<file>:<line>:` so the CLI can print it on one line. Readers return plain dataclasses (or dicts for
JSONL), never half-parsed rows.

Pretraining text formats:
  * `.txt`   -- a file is one document. A large file (a book, a corpus dump) is cut at blank lines into
               pieces of about `TXT_DOC_CHARS` characters, each its own document: a 1 MB novel is not a
               single unit you can hold out for validation, and each piece is still long compared with a
               training window, so the extra document separators cost nothing.
  * `.jsonl` -- one JSON object per line with a string `text` field (other fields are ignored).
  * `.parquet` -- a `text` column (needs pyarrow, imported only when a Parquet file is read).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinygpt4.errors import UserError

PRETRAIN_SUFFIXES = (".txt", ".jsonl", ".parquet")
TXT_DOC_CHARS = 32_768  # a .txt larger than this is cut at blank lines into pieces of about this size
CHAT_ROLES = ("system", "user", "assistant")
MMLU_SPLITS = ("dev", "val", "test")
LETTERS = "ABCD"

PathLike = str | os.PathLike


# ---- small helpers -----------------------------------------------------------------------------------------

def _existing(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"not found: {p}")
    return p


def _open_text(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def _decode_line(path: Path, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start})") from None


def _bump(stats: dict | None, key: str, n: int = 1) -> None:
    if stats is not None:
        stats[key] = stats.get(key, 0) + n


def _skip_or_raise(err: UserError, skip_bad: bool, stats: dict | None) -> None:
    """With skip_bad, count the bad line (and remember the first message); otherwise raise."""
    if not skip_bad:
        raise err
    _bump(stats, "skipped")
    if stats is not None:
        stats.setdefault("first_error", str(err))


# ---- JSONL -------------------------------------------------------------------------------------------------

def iter_jsonl(path: PathLike, skip_bad: bool = False, stats: dict | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line. A line that is not a JSON object raises
    `UserError("file:line: ...")`, or with skip_bad is skipped and counted in stats["skipped"]."""
    p = _existing(path)
    try:
        fh = open(p, "rb")
    except OSError as e:
        raise UserError(f"{p}: cannot read ({e.strerror})") from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                line = _decode_line(p, lineno, raw)
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{p}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            except UserError as err:
                _skip_or_raise(err, skip_bad, stats)
                continue
            yield lineno, obj


def read_jsonl(path: PathLike, skip_bad: bool = False, stats: dict | None = None) -> list[dict]:
    """All objects of a JSONL file (blank lines ignored). See `iter_jsonl` for errors and skipping."""
    return [obj for _, obj in iter_jsonl(path, skip_bad=skip_bad, stats=stats)]


# ---- pretraining text --------------------------------------------------------------------------------------

def expand_pretrain_paths(paths: Iterable[PathLike]) -> list[Path]:
    """Files to read, in order: a folder becomes its supported files (recursively, sorted by path)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[Path] = []
    for path in paths:
        p = _existing(path)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in PRETRAIN_SUFFIXES)
            if not found:
                raise UserError(f"{p}: no {'/'.join(PRETRAIN_SUFFIXES)} files in this folder")
            out.extend(found)
        elif p.suffix in PRETRAIN_SUFFIXES:
            out.append(p)
        else:
            raise UserError(f"{p}: unsupported pretraining file type (use {', '.join(PRETRAIN_SUFFIXES)})")
    return out


def iter_pretrain_texts(paths: Iterable[PathLike] | PathLike, skip_bad: bool = False,
                        stats: dict | None = None) -> Iterator[str]:
    """Yield the documents of .txt / .jsonl (`text` field) / .parquet (`text` column) files and folders.

    A malformed line stops with `UserError("file:line: ...")`; with skip_bad=True it is skipped instead and
    counted in stats["skipped"] (stats, if given, is a dict that also gets "files" and "documents" counts
    and the first skipped line's message as "first_error"). Empty documents are not yielded.
    """
    for p in expand_pretrain_paths(paths):
        _bump(stats, "files")
        if p.suffix == ".txt":
            texts = _iter_txt_documents(p, skip_bad, stats)
        elif p.suffix == ".jsonl":
            texts = _iter_jsonl_texts(p, skip_bad, stats)
        else:
            texts = _iter_parquet_texts(p, skip_bad, stats)
        for text in texts:
            if text:
                _bump(stats, "documents")
                yield text


def _iter_txt_documents(path: Path, skip_bad: bool, stats: dict | None) -> Iterator[str]:
    buf: list[str] = []
    size = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = _decode_line(path, lineno, raw)
            except UserError as err:
                _skip_or_raise(err, skip_bad, stats)
                continue
            buf.append(line)
            size += len(line)
            # Cut after a blank line once the piece is big enough; without blank lines, at any line
            # once it is far too big.
            if (size >= TXT_DOC_CHARS and not line.strip()) or size >= 4 * TXT_DOC_CHARS:
                yield "".join(buf)
                buf, size = [], 0
    if buf:
        yield "".join(buf)


def _iter_jsonl_texts(path: Path, skip_bad: bool, stats: dict | None) -> Iterator[str]:
    for lineno, obj in iter_jsonl(path, skip_bad=skip_bad, stats=stats):
        text = obj.get("text")
        if not isinstance(text, str):
            what = "no \"text\" field" if "text" not in obj else f"\"text\" is {type(text).__name__}, not a string"
            _skip_or_raise(UserError(f"{path}:{lineno}: {what}"), skip_bad, stats)
            continue
        yield text


def _iter_parquet_texts(path: Path, skip_bad: bool, stats: dict | None) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq  # optional and heavy: only reading a Parquet file needs it
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a non-Parquet file
        raise UserError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise UserError(f"{path}: no \"text\" column (columns: {', '.join(names)})")
    row = 0
    for batch in pf.iter_batches(columns=["text"], batch_size=4096):
        for text in batch.column(0).to_pylist():
            row += 1
            if not isinstance(text, str):
                what = "null" if text is None else type(text).__name__
                _skip_or_raise(UserError(f"{path}: row {row}: text is {what}, not a string"), skip_bad, stats)
                continue
            yield text


# ---- chat (OpenAI messages) --------------------------------------------------------------------------------

def validate_messages(messages: Any, where: str) -> None:
    """Check OpenAI chat messages: roles system/user/assistant; content a string or a list of parts
    {"type": "text", "text": str} | {"type": "image_url", "image_url": {"url": str}}."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: \"messages\" must be a non-empty list")
    for i, msg in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(msg, dict):
            raise UserError(f"{at} is not an object")
        role = msg.get("role")
        if role not in CHAT_ROLES:
            raise UserError(f"{at}: role must be one of {', '.join(CHAT_ROLES)}, got {role!r}")
        content = msg.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise UserError(f"{at}: content must be a string or a list of parts")
        for j, part in enumerate(content):
            pat = f"{at}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise UserError(f"{pat}: text part needs a string \"text\"")
            elif kind == "image_url":
                img = part.get("image_url")
                if not isinstance(img, dict) or not isinstance(img.get("url"), str) or not img["url"]:
                    raise UserError(f"{pat}: image_url part needs {{\"image_url\": {{\"url\": str}}}}")
            else:
                raise UserError(f"{pat}: part type must be \"text\" or \"image_url\", got {kind!r}")


def read_chat_jsonl(path: PathLike) -> list[dict]:
    """Records of an OpenAI-messages JSONL file ({"messages": [...], ...other fields kept}), validated."""
    p = Path(path)
    records = []
    for lineno, obj in iter_jsonl(p):
        validate_messages(obj.get("messages"), f"{p}:{lineno}")
        records.append(obj)
    return records


# ---- image captions ----------------------------------------------------------------------------------------

def image_root_for(path: PathLike, refs: list[str]) -> Path:
    """The folder a data file's relative image paths are relative to: its own, or the one above (the
    world writes paths relative to its root, one level above chat/sft.jsonl)."""
    path = Path(path)
    rel = [r for r in refs if not r.startswith("data:")][:20]
    candidates = [path.parent, path.parent.parent]
    for c in candidates:
        if all((c / r).is_file() for r in rel):
            return c.resolve()
    raise UserError(f"{path}: image {rel[0]!r} not found next to the file or in the folder above it")


def read_captions(path: PathLike) -> tuple[list[dict], Path]:
    """captions.jsonl ({"image", "text"} per line) and the folder its image paths are relative to."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"captions not found: {path}")
    rows = []
    for lineno, obj in iter_jsonl(p):
        if not isinstance(obj.get("image"), str) or not isinstance(obj.get("text"), str):
            raise UserError(f"{p}:{lineno}: a caption line needs string \"image\" and \"text\"")
        rows.append(obj)
    return rows, (image_root_for(p, [o["image"] for o in rows]) if rows else p.parent)


# ---- multiple choice: MMLU CSV -----------------------------------------------------------------------------

@dataclass(frozen=True)
class McItem:
    question: str
    choices: list[str]  # four options, A..D
    answer_index: int   # 0..3


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields); quoted fields may span lines."""
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        start = 1
        try:
            for row in reader:
                yield start, row
                start = reader.line_num + 1
        except csv.Error as e:
            raise UserError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not valid UTF-8 (byte {e.start})") from None


def read_mmlu_csv(path: PathLike) -> list[McItem]:
    """One MMLU release file: no header; columns question, A, B, C, D, answer letter."""
    p = _existing(path)
    items = []
    for lineno, row in _csv_rows(p):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 6:
            raise UserError(f"{p}:{lineno}: expected 6 columns (question,A,B,C,D,answer), got {len(row)}")
        answer = row[5].strip().upper()
        if answer not in tuple(LETTERS):
            raise UserError(f"{p}:{lineno}: answer must be one of A, B, C, D, got {row[5]!r}")
        items.append(McItem(question=row[0], choices=row[1:5], answer_index=LETTERS.index(answer)))
    return items


def read_mmlu_dir(root: PathLike) -> dict[str, dict[str, list[McItem]]]:
    """MMLU release layout: root/{dev,val,test}/<subject>_<split>.csv -> {split: {subject: [McItem]}}.

    Splits that are absent are left out; at least one must be present. Subjects are sorted by name.
    """
    r = _existing(root)
    out: dict[str, dict[str, list[McItem]]] = {}
    for split in MMLU_SPLITS:
        d = r / split
        if not d.is_dir():
            continue
        subjects = {}
        for f in sorted(d.glob("*.csv")):
            suffix = f"_{split}"
            subject = f.stem[: -len(suffix)] if f.stem.endswith(suffix) else f.stem
            subjects[subject] = read_mmlu_csv(f)
        out[split] = subjects
    if not out:
        raise UserError(f"{r}: not an MMLU folder (expected dev/ and test/ holding <subject>_<split>.csv)")
    return out


# ---- TruthfulQA --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class McTargets:
    choices: list[str]
    labels: list[int]  # 1 = true answer, 0 = false


@dataclass(frozen=True)
class TruthfulQAMcItem:
    question: str
    mc1: McTargets  # exactly one true choice
    mc2: McTargets  # one or more true choices


@dataclass(frozen=True)
class TruthfulQAGenItem:
    question: str
    best_answer: str
    correct_answers: list[str]
    incorrect_answers: list[str]
    type: str = ""
    category: str = ""
    source: str = ""


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line where the element starts, element) of a top-level JSON array."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    dec = json.JSONDecoder()
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    seen = [0, 1]  # (position, line there): positions only grow, so count newlines incrementally

    def line_of(i: int) -> int:
        if i < seen[0]:
            return text.count("\n", 0, i) + 1
        seen[1] += text.count("\n", seen[0], i)
        seen[0] = i
        return seen[1]

    i = skip_ws(0)
    if i >= n or text[i] != "[":
        raise UserError(f"{path}:{line_of(i)}: expected a JSON array")
    i = skip_ws(i + 1)
    if i < n and text[i] == "]":
        return
    while True:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield line_of(i), obj
        i = skip_ws(end)
        if i < n and text[i] == ",":
            i = skip_ws(i + 1)
        elif i < n and text[i] == "]":
            if skip_ws(i + 1) != n:
                raise UserError(f"{path}:{line_of(i)}: unexpected data after the array")
            return
        else:
            raise UserError(f"{path}:{line_of(i)}: expected ',' or ']' in the JSON array")


def _mc_targets(d: Any, where: str, name: str, exactly_one: bool) -> McTargets:
    if not isinstance(d, dict) or not d:
        raise UserError(f"{where}: \"{name}\" must be a non-empty object mapping answer text to 0/1")
    labels = []
    for k, v in d.items():
        if v not in (0, 1) or isinstance(v, float):
            raise UserError(f"{where}: \"{name}\" label for {k[:40]!r} must be 0 or 1, got {v!r}")
        labels.append(int(v))
    n_true = sum(labels)
    if n_true == 0 or (exactly_one and n_true != 1):
        need = "exactly one" if exactly_one else "at least one"
        raise UserError(f"{where}: \"{name}\" needs {need} true answer, has {n_true}")
    return McTargets(choices=list(d), labels=labels)


def read_truthfulqa_mc(path: PathLike) -> list[TruthfulQAMcItem]:
    """TruthfulQA `mc_task.json`: [{"question", "mc1_targets": {answer: 0/1}, "mc2_targets": {...}}]."""
    p = _existing(path)
    items = []
    for lineno, obj in _iter_json_array(p):
        where = f"{p}:{lineno}"
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected an object")
        q = obj.get("question")
        if not isinstance(q, str) or not q.strip():
            raise UserError(f"{where}: missing \"question\"")
        items.append(TruthfulQAMcItem(
            question=q,
            mc1=_mc_targets(obj.get("mc1_targets"), where, "mc1_targets", exactly_one=True),
            mc2=_mc_targets(obj.get("mc2_targets"), where, "mc2_targets", exactly_one=False),
        ))
    return items


def _split_answers(s: str) -> list[str]:
    return [a.strip() for a in s.split(";") if a.strip()]


def _csv_dict_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise UserError(f"{path}: empty CSV file (expected a header row)") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path}:1: header lacks column(s) {', '.join(missing)} (has {', '.join(header)})")
    for lineno, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{path}:{lineno}: expected {len(header)} columns, got {len(row)}")
        yield lineno, dict(zip(header, row))


def read_truthfulqa_csv(path: PathLike) -> list[TruthfulQAGenItem]:
    """TruthfulQA.csv (generation format): Type, Category, Question, Best Answer, Correct Answers,
    Incorrect Answers, Source; answer lists are ';'-separated."""
    p = _existing(path)
    items = []
    required = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers")
    for lineno, row in _csv_dict_rows(p, required):
        if not row["Question"].strip() or not row["Best Answer"].strip():
            raise UserError(f"{p}:{lineno}: empty Question or Best Answer")
        items.append(TruthfulQAGenItem(
            question=row["Question"],
            best_answer=row["Best Answer"],
            correct_answers=_split_answers(row["Correct Answers"]),
            incorrect_answers=_split_answers(row["Incorrect Answers"]),
            type=row.get("Type", ""),
            category=row.get("Category", ""),
            source=row.get("Source", ""),
        ))
    return items


# ---- RealToxicityPrompts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RtpItem:
    prompt: str
    toxicity: float | None      # the prompt's Perspective toxicity score, if scored
    challenging: bool
    continuation: str | None    # the original document's continuation, if present
    filename: str = ""


def read_rtp_jsonl(path: PathLike) -> list[RtpItem]:
    """RealToxicityPrompts JSONL: {"filename", "challenging", "prompt": {"text", "toxicity", ...},
    "continuation": {"text", ...}}."""
    p = Path(path)
    items = []
    for lineno, obj in iter_jsonl(p):
        where = f"{p}:{lineno}"
        prompt = obj.get("prompt")
        if not isinstance(prompt, dict) or not isinstance(prompt.get("text"), str):
            raise UserError(f"{where}: expected \"prompt\": {{\"text\": str, ...}}")
        tox = prompt.get("toxicity")
        if tox is not None and (isinstance(tox, bool) or not isinstance(tox, int | float)):
            raise UserError(f"{where}: prompt toxicity must be a number or null, got {tox!r}")
        challenging = obj.get("challenging", False)
        if not isinstance(challenging, bool):
            raise UserError(f"{where}: \"challenging\" must be true or false, got {challenging!r}")
        cont = obj.get("continuation")
        cont_text = cont.get("text") if isinstance(cont, dict) else None
        if cont_text is not None and not isinstance(cont_text, str):
            raise UserError(f"{where}: continuation text must be a string")
        items.append(RtpItem(
            prompt=prompt["text"],
            toxicity=None if tox is None else float(tox),
            challenging=challenging,
            continuation=cont_text,
            filename=str(obj.get("filename", "")),
        ))
    return items


# ---- XSTest ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class XSTestItem:
    id: str
    prompt: str
    type: str
    label: str                  # "safe" | "unsafe"
    focus: str = ""
    note: str = ""
    category: str | None = None  # the world's policy category column (not in the original XSTest)


def read_xstest_csv(path: PathLike) -> list[XSTestItem]:
    """XSTest CSV with header id,prompt,type,label,focus,note (plus an optional category column)."""
    p = _existing(path)
    items = []
    for lineno, row in _csv_dict_rows(p, ("id", "prompt", "type", "label")):
        label = row["label"].strip().lower()
        if label not in ("safe", "unsafe"):
            raise UserError(f"{p}:{lineno}: label must be safe or unsafe, got {row['label']!r}")
        if not row["prompt"].strip():
            raise UserError(f"{p}:{lineno}: empty prompt")
        category = row.get("category")
        items.append(XSTestItem(
            id=row["id"].strip(),
            prompt=row["prompt"],
            type=row["type"].strip(),
            label=label,
            focus=row.get("focus", ""),
            note=row.get("note", ""),
            category=category.strip() if category and category.strip() else None,
        ))
    return items


# ---- alignment data: preference pairs, RL prompts, rubric-labelled responses --------------------------------

# The rubric's vocabulary (safety/rubric.py, which a data reader does not import: the layers below the stages
# stand on their own; tests/test_readers.py checks the two agree).
RUBRIC_PROPOSITIONS = ("apology", "inability", "judgement", "evasive", "disallowed_content", "insulting", "complies",
                       "partial_compliance", "disclaimer", "professional_help", "resources", "dosage")
RUBRIC_CLASSES = ("A", "B", "C", "D")
RUBRIC_RANKS = ("ideal", "acceptable", "unacceptable", "disallowed")
PROMPT_TYPES = ("disallowed", "sensitive", "benign_lookalike", "allowed")
DATA_SPLITS = ("train", "test")


def _paths(paths: Iterable[PathLike] | PathLike) -> list[Path]:
    return [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]


def _prompt_messages(messages: Any, where: str, name: str = "messages") -> None:
    """A conversation to answer: valid messages whose last one is the user's."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: \"{name}\" must be a non-empty list of messages")
    validate_messages(messages, where)
    if messages[-1].get("role") != "user":
        raise UserError(f"{where}: \"{name}\" must end with a user message, got {messages[-1].get('role')!r}")


def _assistant_messages(messages: Any, where: str, name: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: \"{name}\" must be a non-empty list of assistant messages")
    validate_messages(messages, where)
    roles = [m["role"] for m in messages]
    if any(r != "assistant" for r in roles) or not all(isinstance(m["content"], str) for m in messages):
        raise UserError(f"{where}: \"{name}\" must hold assistant messages with string content, got roles {roles}")


def _optional(obj: dict, where: str, field: str, allowed: tuple[str, ...] | None = None,
              nullable: bool = False) -> None:
    """A field that may be absent; when present a string (from `allowed`, if given), or null if nullable."""
    if field not in obj or (nullable and obj[field] is None):
        return
    value = obj[field]
    if not isinstance(value, str) or (allowed is not None and value not in allowed):
        want = f"one of {', '.join(allowed)}" if allowed else "a string"
        raise UserError(f"{where}: \"{field}\" must be {want}, got {value!r}")


def _read_checked(paths: Iterable[PathLike] | PathLike, check) -> list[dict]:
    records = []
    for p in _paths(paths):
        for lineno, obj in iter_jsonl(p):
            check(obj, f"{p}:{lineno}")
            records.append(obj)
    return records


def _check_preference(obj: dict, where: str) -> None:
    for name in ("prompt", "chosen", "rejected"):
        if name not in obj:
            raise UserError(f"{where}: missing \"{name}\"")
    _prompt_messages(obj["prompt"], where, "prompt")
    _assistant_messages(obj["chosen"], where, "chosen")
    _assistant_messages(obj["rejected"], where, "rejected")
    for name in ("kind", "lang"):
        _optional(obj, where, name)
    _optional(obj, where, "split", DATA_SPLITS)


def read_preferences(paths: Iterable[PathLike] | PathLike) -> list[dict]:
    """Preference pairs in TRL's conversational layout: {"prompt": [messages ending with the user's],
    "chosen": [assistant messages], "rejected": [assistant messages]}, optionally "kind", "lang" and "split"
    (train | test). A malformed line raises UserError("file:line: ...")."""
    return _read_checked(paths, _check_preference)


def _check_rl_prompt(obj: dict, where: str) -> None:
    if "messages" not in obj:
        raise UserError(f"{where}: missing \"messages\"")
    _prompt_messages(obj["messages"], where)
    _optional(obj, where, "type", PROMPT_TYPES)
    for name in ("category", "lang", "framing", "kind"):
        _optional(obj, where, name)
    _optional(obj, where, "reference", nullable=True)


def read_rl_prompts(paths: Iterable[PathLike] | PathLike) -> list[dict]:
    """RL prompts: {"messages": [messages ending with the user's], "type" (a rubric prompt type), "category",
    "lang", "framing", "kind", "reference" (the ideal answer or null)}; all but "messages" optional."""
    return _read_checked(paths, _check_rl_prompt)


def _check_rubric(obj: dict, where: str) -> None:
    for name in ("messages", "response", "propositions", "class", "type"):
        if name not in obj:
            raise UserError(f"{where}: missing \"{name}\"")
    _prompt_messages(obj["messages"], where)
    if not isinstance(obj["response"], str):
        raise UserError(f"{where}: \"response\" must be a string")
    props = obj["propositions"]
    if not isinstance(props, dict) or any(not isinstance(props.get(n), bool) for n in RUBRIC_PROPOSITIONS):
        raise UserError(f"{where}: \"propositions\" must give true or false for each of "
                        f"{', '.join(RUBRIC_PROPOSITIONS)}")
    _optional(obj, where, "class", RUBRIC_CLASSES)
    _optional(obj, where, "type", PROMPT_TYPES)
    _optional(obj, where, "rank", RUBRIC_RANKS)
    _optional(obj, where, "split", DATA_SPLITS)
    for name in ("category", "lang", "framing", "style"):
        _optional(obj, where, name)


def read_rubric(paths: Iterable[PathLike] | PathLike) -> list[dict]:
    """Rubric-labelled responses: {"messages", "response", "propositions": {each of RUBRIC_PROPOSITIONS: bool},
    "class": A-D, "type": a prompt type}, optionally "rank", "category", "lang", "framing", "split", "style"."""
    return _read_checked(paths, _check_rubric)
