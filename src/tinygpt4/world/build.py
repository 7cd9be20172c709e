"""Write the whole world to a directory: every dataset in its public format, a data card and world.json.

The tree is written into a temporary sibling directory and renamed into place, so a failed or
interrupted build never leaves a half-written world. Same seed and scale, same bytes: every component
draws from its own named random stream, files are written in a fixed order, nothing records the time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import tinygpt4.world.alignment as A
import tinygpt4.world.benchmarks as B
from tinygpt4.errors import UserError
from tinygpt4.world.card import write_card
from tinygpt4.world.chat import make_chat
from tinygpt4.world.config import WorldConfig
from tinygpt4.world.entities import KINDS, World, make_world
from tinygpt4.world.forum import INSULT_LEXICON
from tinygpt4.world.images import CAPTION_TASKS, Item, make_item, save_png
from tinygpt4.world.messages import user_text
from tinygpt4.world.misconceptions import Misconception, make_misconceptions
from tinygpt4.world.names import LANGS
from tinygpt4.world.safety import REFUSAL
from tinygpt4.world.text import Doc, make_corpus

FORMAT_VERSION = 1
SAFETY_COLUMNS = ["id", "prompt", "type", "label", "focus", "note", "category"]
# Captions per task in proportion to these weights (1 for the others). Reading a word is the finest detail
# a 64-pixel picture carries: a tower trained from scratch needs far more signs to tell the sign words apart
# than it needs shapes, colours or charts (measured: docs/eval-notes.md).
CAPTION_TASK_WEIGHTS = {"read_sign": 5}
CAPTION_CYCLE = tuple(t for t in CAPTION_TASKS for _ in range(CAPTION_TASK_WEIGHTS.get(t, 1)))


class Writer:
    """Writes files under the world root and remembers, for the manifest, what each one holds."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, int] = {}   # relative path -> record count
        self.image_counts: Counter = Counter()
        self.training_image_keys: set[bytes] = set()

    def _path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def jsonl(self, rel: str, records: list[dict]) -> None:
        with open(self._path(rel), "w", encoding="utf-8", newline="\n") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.files[rel] = len(records)

    def json(self, rel: str, obj, count: int) -> None:
        self._path(rel).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        self.files[rel] = count

    def csv(self, rel: str, rows: list[list], header: list[str] | None = None) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
        self._path(rel).write_text(buf.getvalue(), encoding="utf-8")
        self.files[rel] = len(rows)

    def image(self, img, folder: str, training: bool) -> str:
        i = self.image_counts[folder]
        self.image_counts[folder] += 1
        rel = f"images/{folder}/{i:05d}.png"
        save_png(img, self._path(rel))
        if training:
            self.training_image_keys.add(B.image_key(img))
        return rel


def _shards(docs: list[Doc], max_chars: int) -> list[list[dict]]:
    shards, cur, size = [], [], 0
    for d in docs:
        if cur and size + len(d.text) > max_chars:
            shards.append(cur)
            cur, size = [], 0
        cur.append(d.to_json())
        size += len(d.text)
    return shards + ([cur] if cur else [])


def _tally(values) -> dict:
    return dict(sorted(Counter(values).items()))


def _text_counts(docs: list[Doc]) -> dict:
    chars, nbytes = Counter(), Counter()
    for d in docs:
        chars[d.lang] += len(d.text)
        nbytes[d.lang] += len(d.text.encode("utf-8"))
    total = sum(chars.values())
    return {"docs": len(docs), "chars": dict(sorted(chars.items())), "bytes": dict(sorted(nbytes.items())),
            "char_share": {k: round(v / total, 4) for k, v in sorted(chars.items())},
            "kinds": _tally(d.kind for d in docs)}


@dataclass
class _Training:
    captions: list[dict]
    chat: list[dict]
    docs: list[Doc]
    heldout: list[Doc]


@dataclass
class _Benchmarks:
    exams: dict
    truthfulqa: list
    factuality: list[dict]
    image_qa: list[Item]
    toxicity: list[dict]


@dataclass
class _Alignment:
    rubric: list[dict]
    preferences: list[dict]
    rl: list[dict]
    safety: list[dict]


def _write_world(root: Path, cfg: WorldConfig) -> dict:
    out = Writer(root)
    world = make_world(cfg)
    miscs = make_misconceptions(world, cfg.sizes.misconceptions, cfg.seed)
    train = _write_training_data(out, world, cfg, miscs)
    align = _write_alignment(out, world, cfg, miscs)
    bench = _write_benchmarks(out, world, cfg, miscs)
    counts = _counts(out, world, miscs, train, bench, align)
    config = cfg.to_dict()
    config.update(insult_lexicon=list(INSULT_LEXICON), refusal=REFUSAL, format_version=FORMAT_VERSION)
    write_card(out, config, counts, world, miscs, bench.image_qa, train.docs, train.chat)
    files = [{"path": rel, "records": n, "bytes": (root / rel).stat().st_size,
              "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest()} for rel, n in sorted(out.files.items())]
    manifest = {"seed": cfg.seed, "scale": cfg.scale, "config": config, "counts": counts, "files": files}
    (root / "world.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest


def _write_training_data(out: Writer, world: World, cfg: WorldConfig, miscs: list[Misconception]) -> _Training:
    """Captions, conversations, the pretraining shards and the held-out text."""
    sz = cfg.sizes
    # Captions (pretraining image-text pairs) and conversations draw their images first, so the
    # benchmark can redraw any image that happens to equal a training one.
    rng = random.Random(f"{cfg.seed}:captions")
    captions = []
    for i in range(sz.caption_images):
        item = make_item(CAPTION_CYCLE[i % len(CAPTION_CYCLE)], rng, cfg.image_size, world)
        captions.append({"image": out.image(item.images[0], "captions", True), "text": item.caption})
    out.jsonl("captions.jsonl", captions)
    convs = make_chat(world, cfg, miscs, lambda img: out.image(img, "chat", True))
    out.jsonl("chat/sft.jsonl", convs)

    docs = make_corpus(world, cfg, miscs, sz.corpus_chars, "pretrain")
    for i, shard in enumerate(_shards(docs, sz.shard_chars)):
        out.jsonl(f"pretrain/shard_{i:03d}.jsonl", shard)
    held = make_corpus(world, cfg, miscs, sz.heldout_chars, "heldout", with_fixed=False)
    out.jsonl("heldout/heldout.jsonl", [{"text": d.text, "lang": d.lang, "kind": d.kind} for d in held])
    return _Training(captions, convs, docs, held)


def _write_alignment(out: Writer, world: World, cfg: WorldConfig, miscs: list[Misconception]) -> _Alignment:
    """The reward-model data and the RL prompts (their images are training images, so the image benchmark
    avoids them), then the safety eval and its XSTest subset."""
    rubric = A.rubric_data(world, cfg, lambda img: out.image(img, "prefs", True))
    out.jsonl("preferences/rubric.jsonl", rubric)
    prefs = A.preference_data(world, cfg, miscs, lambda img: out.image(img, "prefs", True))
    out.jsonl("preferences/preferences.jsonl", prefs)
    rl = A.rl_prompts(world, cfg, miscs, lambda img: out.image(img, "rl", True))
    out.jsonl("rl/prompts.jsonl", rl)
    safety = A.safety_eval(world, cfg, lambda img: out.image(img, "safety", False))
    out.jsonl("safety/prompts.jsonl", safety)
    xstest = [r for r in safety if r["lang"] == "en" and r["framing"] == "plain" and len(r["messages"]) == 1]
    out.csv("safety/prompts.csv", [[r["id"], user_text(r["messages"][-1]), r["type"], r["label"], r["focus"],
                                    r["note"], r["category"]] for r in xstest], SAFETY_COLUMNS)
    return _Alignment(rubric, prefs, rl, safety)


def _write_benchmarks(out: Writer, world: World, cfg: WorldConfig, miscs: list[Misconception]) -> _Benchmarks:
    """Every benchmark but the safety eval, after the training data (image QA redraws any image a training
    file holds)."""
    exam = B.exams(world, cfg)
    for (lang, split, subject), rows in sorted(exam.items()):
        out.csv(f"exams/{lang}/{split}/{subject}_{split}.csv", rows)
    tqa = B.truthfulqa(miscs)
    out.json("truthfulqa/mc_task.json", tqa, len(tqa))
    fact = B.factuality(world, cfg)
    out.jsonl("factuality/factuality.jsonl", fact)
    qa_items: list[Item] = B.image_items(world, cfg, out.training_image_keys)
    out.jsonl("image_qa/image_qa.jsonl", [
        {"images": [out.image(img, "qa", False) for img in it.images], "question": it.question,
         "answer": it.answer, "task": it.task, **({"working": it.working} if it.working else {})} for it in qa_items])
    out.jsonl("followup/followup.jsonl", B.followups(world, cfg))
    tox = B.toxicity(world, cfg)
    out.jsonl("toxicity/prompts.jsonl", tox)
    return _Benchmarks(exam, tqa, fact, qa_items, tox)


def _alignment_counts(align: _Alignment) -> dict:
    def by(records: list[dict], *fields: str) -> dict:
        return {f: _tally(r[f] for r in records) for f in fields}

    return {"rubric": by(align.rubric, "class", "rank", "type", "style", "lang", "framing", "split"),
            "preferences": by(align.preferences, "kind", "lang", "split"),
            "rl": by(align.rl, "kind", "type", "category", "lang", "framing"),
            "safety": by(align.safety, "type", "category", "lang", "framing")}


def _counts(out: Writer, world: World, miscs: list[Misconception], train: _Training, bench: _Benchmarks,
            align: _Alignment) -> dict:
    """world.json's "counts": how many of each thing the world holds."""
    forum = [d for d in train.docs if d.kind == "forum"]
    replies = sum(len(d.meta["insult"]) for d in forum)
    insulting = sum(sum(d.meta["insult"]) for d in forum)
    exam, tox = bench.exams, bench.toxicity
    return {
        "facts": len(world.facts()),
        "entities": {k: len(world.by_kind[k]) for k in KINDS},
        "hazardous_compounds": sum(c.hazardous for c in world.by_kind["compound"]),
        "misconceptions": _tally(m.split for m in miscs),
        "pretrain": _text_counts(train.docs),
        "heldout": _text_counts(train.heldout),
        "forum": {"threads": len(forum), "replies": replies, "insulting": insulting,
                  "insult_rate": round(insulting / max(1, replies), 4)},
        "images": dict(sorted(out.image_counts.items())),
        "captions": len(train.captions),
        "chat": _tally(c["meta"]["kind"] for c in train.chat),
        "exams": {lang: {split: {s: len(exam[(lang, split, s)]) for s in B.EXAM_SUBJECTS}
                         for split in ("dev", "test")} for lang in LANGS},
        "truthfulqa": len(bench.truthfulqa),
        "factuality": _tally(r["category"] for r in bench.factuality),
        "image_qa": _tally(it.task for it in bench.image_qa),
        "toxicity": {"prompts": len(tox), "challenging": sum(r["challenging"] for r in tox)},
        **_alignment_counts(align),
    }


def build_world(out_dir, *, seed: int = 0, scale: str = "small", force: bool = False, **overrides) -> dict:
    """Generate the world into out_dir and return its manifest (the contents of world.json).

    An existing non-empty out_dir is replaced only with force=True and only if it holds a world.json.
    """
    cfg = WorldConfig.make(seed, scale, **overrides)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise UserError(f"{out} already exists and is not empty (pass --force to replace a world there)")
        if not (out / "world.json").is_file():
            raise UserError(f"{out} is not empty and holds no world.json; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-world"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = _write_world(tmp, cfg)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def timed_build(out_dir, **kw) -> tuple[dict, float]:
    t0 = time.perf_counter()
    manifest = build_world(out_dir, **kw)
    return manifest, time.perf_counter() - t0
