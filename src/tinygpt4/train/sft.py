"""Supervised fine-tuning on conversations, with images: `tinygpt4 sft`.

Every conversation is rendered once by the shared chat renderer, which yields the token ids and the loss
mask together (1 on assistant tokens and the assistant's <|eot|>), so the loss can never reach the user's
words. Several conversations are packed into each training sequence; a document mask keeps them from
attending to each other and positions restart at each one, so a packed conversation trains exactly as it
would alone, with no padding wasted.

When the base checkpoint is text-only and the data holds images, a fresh vision tower is attached. It can
first learn to name what it sees in the captions on its own (train/tower_pretrain.py), then be trained on
the captions with the decoder frozen (LLaVA's stage 1: the projector learns to speak the decoder's embedding
language before the decoder is asked to change), then everything is fine-tuned together. Some plain
pretraining text can be mixed in so the decoder keeps what it knew.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tinygpt4.chat import count_images, render_chat
from tinygpt4.checkpoint import load_model, read_config
from tinygpt4.config import ModelConfig, VisionConfig, vision_preset
from tinygpt4.data.images import ImageCache, normalize_pixels
from tinygpt4.data.readers import image_root_for, iter_pretrain_texts, read_captions, read_chat_jsonl
from tinygpt4.errors import UserError
from tinygpt4.model.gpt import document_mask
from tinygpt4.model.vlm import VLM
from tinygpt4.runtime import Dist, compute_dtype, init_distributed, resolve_device
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.cli_args import add_option, add_run_options, config_from_args
from tinygpt4.train.loop import TrainConfig, train
from tinygpt4.train.tower_pretrain import caption_bags, pretrain_tower
from tinygpt4.train.validation import make_val_fn

# Instructions for caption examples (the captions file has only image + text).
CAPTION_PROMPTS = (
    "Describe the image.",
    "What is in this picture?",
    "Describe this image briefly.",
    "What does the image show?",
)


@dataclass
class SFTConfig:
    base: str
    data: list[str]
    out: str
    max_steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3
    vision_lr_mult: float = 1.0     # main stage: the vision tower and projector train at lr * this
    projector_lr_mult: float = 1.0  # and the projector at that times this
    freeze_tower: bool = False      # main stage: the tower keeps its weights; projector and decoder train
    lr_warmup_steps: int = 20       # learning-rate warmup of the main stage
    seq_len: int | None = None      # default: the base model's
    vision: str | VisionConfig = "tiny"  # tower attached to a text-only base: a preset name or a config
    captions: str | None = None     # image-caption JSONL for the vision-only stage (and caption_mix)
    tower_steps: int = 0            # a fresh tower first learns to name what it sees in --captions, alone
    tower_pairs: int = 0            # its targets also hold adjacent-token pairs that this many captions share
    tower_lr: float = 1e-3
    tower_batch_size: int = 64      # images per tower step
    vision_warmup_steps: int = 0    # steps of the vision-only stage (decoder frozen)
    vision_warmup_lr: float = 2e-3
    caption_mix: float = 0.0        # fraction of main-stage examples drawn from the captions
    text_data: list[str] = field(default_factory=list)  # pretraining text mixed in against forgetting
    text_mix: float = 0.0           # fraction of main-stage tokens that are plain text
    val_fraction: float = 0.02
    val_batches: int = 2
    eval_every: int = 100
    save_every: int = 0
    log_every: int = 10
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    optimizer: str = "adamw"        # adamw | muon, for the tower stage and the main stage
    compile: str = "auto"
    quiet: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Example:
    """One rendered conversation (or caption, or text document)."""

    ids: list[int]
    mask: list[int]
    images: list[tuple[str, str]] = field(default_factory=list)  # (root, ref) in placeholder order


# ---- data -----------------------------------------------------------------------------------------------

def _image_refs(messages: list[dict]) -> list[str]:
    refs = []
    for m in messages:
        if isinstance(m.get("content"), list):
            refs += [p["image_url"]["url"] for p in m["content"] if p.get("type") == "image_url"]
    return refs


def load_chat_examples(paths: list[str], tok: Tokenizer, image_tokens: int, max_len: int) -> tuple[
        list[Example], dict]:
    """Render every conversation (truncated to max_len by dropping oldest turns); count what was skipped."""
    examples, stats = [], {"conversations": 0, "skipped_too_long": 0, "dropped_turns": 0, "no_answer": 0}
    for f in paths:
        p = Path(f)
        if not p.is_file():
            raise UserError(f"data not found: {f}")
        records = read_chat_jsonl(p)
        refs = [r for rec in records for r in _image_refs(rec["messages"])]
        root = image_root_for(p, refs) if any(not r.startswith("data:") for r in refs) else p.parent.resolve()
        for lineno, rec in enumerate(records, 1):
            stats["conversations"] += 1
            try:
                r = render_chat(rec["messages"], tok, image_tokens=image_tokens, max_len=max_len,
                                load_images=False)
            except UserError as e:
                if "too long" in str(e):
                    stats["skipped_too_long"] += 1
                    continue
                raise UserError(f"{p}:{lineno}: {e}") from None
            if not any(r.loss_mask):
                stats["no_answer"] += 1
                continue
            stats["dropped_turns"] += r.dropped_turns
            examples.append(Example(r.ids, r.loss_mask, [(str(root), ref) for ref in r.images]))
    return examples, stats


def load_caption_examples(path: str, tok: Tokenizer, image_tokens: int, max_len: int) -> list[Example]:
    """captions.jsonl ({"image", "text"}) as one-turn conversations: an instruction and the image, answered
    by the caption."""
    rows, root = read_captions(path)
    out = []
    for i, obj in enumerate(rows):
        msgs = [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": obj["image"]}},
                    {"type": "text", "text": CAPTION_PROMPTS[i % len(CAPTION_PROMPTS)]}]},
                {"role": "assistant", "content": obj["text"]}]
        r = render_chat(msgs, tok, image_tokens=image_tokens, max_len=max_len, load_images=False)
        out.append(Example(r.ids, r.loss_mask, [(str(root), ref) for ref in r.images]))
    return out


def load_text_examples(paths: list[str], tok: Tokenizer, max_len: int, want_tokens: int,
                       seed: int = 0) -> list[Example]:
    """Plain documents (loss on every token), `<|bos|> text` cut to max_len, about want_tokens in all, drawn
    at random from the corpus (its first part only when it is much larger than needed), so every kind of
    document is represented."""
    if want_tokens <= 0:
        return []
    docs, chars = [], 0
    for text in iter_pretrain_texts(paths):
        docs.append(text)
        chars += len(text)
        if chars > 200 * want_tokens:  # ~50x more than needed at ~4 characters per token
            break
    out, n = [], 0
    for i in np.random.default_rng([seed, 13]).permutation(len(docs)).tolist():
        ids = [tok.bos_id, *tok.encode(docs[i])][:max_len]
        if len(ids) < 2:
            continue
        out.append(Example(ids, [0] + [1] * (len(ids) - 1)))
        n += len(ids)
        if n >= want_tokens:
            break
    return out


def pack_rows(lengths: list[int], order: np.ndarray, seq_len: int) -> list[list[int]]:
    """Best-fit packing in the given order: each example goes into the open row with the least room that
    still holds it, else starts a row. Rows of short conversations come out much fuller than with
    next-fit (a row closing when the next example does not fit), so an epoch takes fewer steps
    (docs/training-notes.md). Rows keep their examples in the given order; the rows come out in the order
    they were started."""
    rows: list[list[int]] = []
    room: list[int] = []
    # open rows by the room left in them (1..seq_len), so the best fit is the first non-empty bucket >= n
    by_room: list[list[int]] = [[] for _ in range(seq_len + 1)]
    for i in order.tolist():
        n = lengths[i]
        r = next((r for r in range(n, seq_len + 1) if by_room[r]), None)
        if r is None:
            rows.append([])
            room.append(seq_len)
            row = len(rows) - 1
        else:
            row = by_room[r].pop()
        rows[row].append(i)
        room[row] -= n
        if room[row] > 0:
            by_room[room[row]].append(row)
    return rows


class ChatBatches:
    """Endless packed batches for `model(**batch)`: idx, targets (-1 off the loss mask), positions (restart
    per example), attn_mask (causal within an example), and images (row-major placeholder order).

    Each epoch shuffles the examples with (seed, epoch) and packs them; the position is (epoch, row), so
    state_dict() / load_state_dict() resume exactly. Under DDP, rank r takes rows r, r + world_size, ...
    """

    def __init__(self, examples: list[Example], batch_size: int, seq_len: int, *, image_size: int | None,
                 pad_id: int, seed: int = 0, rank: int = 0, world_size: int = 1, with_images: bool = True):
        if not examples:
            raise UserError("no training examples")
        too_long = [len(e.ids) for e in examples if len(e.ids) - 1 > seq_len]
        if too_long:
            raise ValueError(f"an example of {too_long[0]} tokens does not fit sequences of {seq_len}")
        self.examples = examples
        self.lengths = [len(e.ids) - 1 for e in examples]
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        self.pad_id, self.seed = pad_id, int(seed)
        self.rank, self.world_size = rank, world_size
        self.with_images = with_images
        self.images = ImageCache(image_size) if image_size else None
        self.epoch, self.row = 0, 0
        self._rows_epoch, self._rows = -1, []

    def _epoch_rows(self, epoch: int) -> list[list[int]]:
        if epoch != self._rows_epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            rows = pack_rows(self.lengths, order, self.seq_len)
            keep = len(rows) // self.world_size * self.world_size or len(rows)
            self._rows = rows[:keep][self.rank::self.world_size] or rows[:1]
            self._rows_epoch = epoch
        return self._rows

    def next(self) -> dict:
        picked = []
        while len(picked) < self.batch_size:
            rows = self._epoch_rows(self.epoch)
            picked.append(rows[self.row])
            self.row += 1
            if self.row == len(rows):
                self.epoch, self.row = self.epoch + 1, 0
        return self.collate(picked)

    def first_batches(self, max_batches: int) -> list[dict]:
        """The first epoch's rows in order, as up to max_batches consecutive batches: the same every time,
        whatever the position (a fixed validation set)."""
        rows = self._epoch_rows(0)
        starts = range(0, len(rows), self.batch_size)[:max_batches]
        return [self.collate(rows[i:i + self.batch_size]) for i in starts]

    def collate(self, rows: list[list[int]]) -> dict:
        B, T = len(rows), self.seq_len
        idx = torch.full((B, T), self.pad_id, dtype=torch.long)
        tgt = torch.full((B, T), -1, dtype=torch.long)
        pos = torch.zeros((B, T), dtype=torch.long)
        doc = torch.full((B, T), -1, dtype=torch.long)
        pics = []
        for b, row in enumerate(rows):
            at = 0
            for d, i in enumerate(row):
                ex = self.examples[i]
                n = len(ex.ids) - 1
                ids = torch.tensor(ex.ids)
                m = torch.tensor(ex.mask[1:], dtype=torch.bool)
                idx[b, at:at + n] = ids[:-1]
                tgt[b, at:at + n] = torch.where(m, ids[1:], -1)
                pos[b, at:at + n] = torch.arange(n)
                doc[b, at:at + n] = d
                at += n
                if self.with_images:
                    pics += [self.images.get(root, ref) for root, ref in ex.images]
            doc[b, at:] = len(row)  # padding: its own block, never attended to by real tokens
            pos[b, at:] = torch.arange(T - at)
        batch = {"idx": idx, "targets": tgt, "positions": pos, "attn_mask": document_mask(doc)}
        if self.with_images:
            if pics:
                batch["images"] = normalize_pixels(pics)
            else:
                batch["images"] = None
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "row": self.row, "seed": self.seed, "n_examples": len(self.examples),
                "seq_len": self.seq_len, "world_size": self.world_size}

    def load_state_dict(self, d: dict) -> None:
        for k in ("seed", "n_examples", "seq_len", "world_size"):
            if d.get(k) != self.state_dict()[k]:
                raise UserError(f"cannot resume the data position: saved {k}={d.get(k)}, this run has "
                                f"{self.state_dict()[k]} (same data and settings are needed)")
        self.epoch, self.row = int(d["epoch"]), int(d["row"])
        if self.row >= len(self._epoch_rows(self.epoch)):
            raise UserError(f"cannot resume the data position: row {self.row} out of range")


def split_val(examples: list[Example], fraction: float, seed: int, cap: int = 64) -> tuple[list, list]:
    n_val = min(cap, int(len(examples) * fraction))
    if n_val == 0 or len(examples) - n_val < 1:
        return examples, []
    pick = set(np.random.default_rng([seed, 7]).choice(len(examples), n_val, replace=False).tolist())
    return ([e for i, e in enumerate(examples) if i not in pick], [e for i, e in enumerate(examples) if i in pick])


# ---- model ----------------------------------------------------------------------------------------------

def resolve_vision(vision: str | VisionConfig) -> VisionConfig:
    if isinstance(vision, VisionConfig):
        return vision
    try:
        return vision_preset(vision)
    except ValueError as e:
        raise UserError(str(e)) from None


def load_base(base: str, device, vision: str | VisionConfig, need_vision: bool, seed: int):
    """The base checkpoint; a text-only base gets a fresh vision tower when the data has images."""
    model, _ = load_model(base, device="cpu")
    attached = False
    if need_vision and getattr(model.config, "vision", None) is None:
        model = VLM.from_text_model(model, resolve_vision(vision), seed=seed)
        attached = True
    return model.to(device), attached


def _mix(main: list[Example], extra: list[Example], frac: float, seed: int) -> list[Example]:
    """main plus about frac/(1-frac)·len(main) examples drawn from extra (cycled)."""
    if frac <= 0 or not extra:
        return main
    want = int(round(len(main) * frac / (1 - frac)))
    order = np.random.default_rng([seed, 11]).permutation(max(want, len(extra)))
    return main + [extra[i % len(extra)] for i in order[:want]]


def run_sft(cfg: SFTConfig) -> dict:
    """Fine-tune `cfg.base` on `cfg.data` into `cfg.out`; returns the run summary (also summary.json)."""
    _check_settings(cfg)
    base_cfg = ModelConfig.from_dict(read_config(cfg.base)["model"])
    vc = _vision_config(cfg, base_cfg)
    image_tokens = vc.tokens_per_image if vc is not None else 0
    seq_len = cfg.seq_len or base_cfg.seq_len

    dist_info = init_distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    tok = Tokenizer.load(cfg.base)
    data = load_sft_data(cfg, tok, image_tokens, seq_len)

    model, attached = load_base(cfg.base, device, cfg.vision, vc is not None, cfg.seed)
    with_images = getattr(model.config, "vision", None) is not None
    make_batches = functools.partial(
        ChatBatches, batch_size=cfg.batch_size, seq_len=seq_len,
        image_size=model.config.vision.image_size if with_images else None, pad_id=tok.pad_id,
        rank=dist_info.rank, world_size=dist_info.world_size, with_images=with_images)
    tower_frozen = bool(cfg.freeze_tower and with_images)
    resuming = _resuming(cfg, tower_frozen)
    common = {"dtype": cfg.dtype, "compile": cfg.compile, "seed": cfg.seed, "quiet": cfg.quiet,
              "log_every": cfg.log_every, "optimizer": cfg.optimizer}
    tower_summary = warm_summary = None
    if cfg.tower_steps > 0 and data.captions and attached and not resuming:
        tower_summary = _tower_stage(model, cfg, tok, device, dist_info)
    if cfg.vision_warmup_steps > 0 and data.captions and with_images and not resuming:
        warm_batches = make_batches(data.captions, seed=cfg.seed + 1)
        warm_summary = _vision_warmup(model, data.captions, warm_batches, cfg, common, tok, dist_info,
                                      Path(cfg.out) / "warmup")

    if tower_frozen:
        model.vision.requires_grad_(False)  # autograd then records nothing there: images only run forward
    img_frac = _image_token_frac(data.train, tok)
    fpt = (model.flops_per_token(seq_len, img_frac, train_tower=not tower_frozen) if with_images
           else model.flops_per_token(seq_len))
    val_fixed = make_batches(data.val, seed=cfg.seed).first_batches(cfg.val_batches) if data.val else []
    lr_mult = ({"vision.": cfg.vision_lr_mult, "projector.": cfg.vision_lr_mult * cfg.projector_lr_mult}
               if with_images else {})
    tc = TrainConfig(max_steps=cfg.max_steps, lr=cfg.lr, warmup_steps=cfg.lr_warmup_steps,
                     eval_every=cfg.eval_every, save_every=cfg.save_every, lr_mult=lr_mult, **common)
    extra = {"stage": "sft", "base": str(cfg.base), "vision_attached": attached,
             "tower_frozen": tower_frozen, **cfg.extra}
    return train(
        model, make_batches(data.train, seed=cfg.seed), tc, cfg.out, tokenizer=tok,
        eval_fn=make_val_fn(val_fixed, token_weighted=False) if val_fixed else None,
        resume=cfg.resume, extra_config=extra, dist_info=dist_info, flops_per_token=fpt,
        summary_extra={"preset": "sft", "examples": len(data.train), "val_examples": len(data.val),
                       "image_token_frac": round(img_frac, 4), "seq_len": seq_len, "batch_size": cfg.batch_size,
                       "vision_attached": attached, "tower_frozen": tower_frozen,
                       "data": data.stats,
                       "tower_pretrain": tower_summary, "vision_warmup": warm_summary},
    )


def _check_settings(cfg: SFTConfig) -> None:
    if not cfg.data:
        raise UserError("no --data files given")
    if not 0 <= cfg.text_mix < 1 or not 0 <= cfg.caption_mix < 1:
        raise UserError("--text-mix and --caption-mix must be in [0, 1)")
    if cfg.max_steps < 1 or cfg.batch_size < 1:
        raise UserError("--max-steps and --batch-size must be at least 1")
    if cfg.tower_steps < 0 or (cfg.tower_steps and not cfg.captions):
        raise UserError("--tower-steps trains the vision tower on --captions: give both (and steps >= 0)")
    if cfg.tower_pairs < 0:
        raise UserError("--tower-pairs must be >= 0 (0: the tower stage predicts single words only)")


def _vision_config(cfg: SFTConfig, base_cfg: ModelConfig) -> VisionConfig | None:
    """The base's vision tower, or the one a text-only base gets when the data has images; None: text only."""
    has_images = cfg.captions is not None or any(
        count_images(rec["messages"]) for f in cfg.data if Path(f).is_file() for rec in read_chat_jsonl(f))
    vc = base_cfg.vision
    if vc is None and has_images:
        vc = resolve_vision(cfg.vision)
    return vc


@dataclass
class SFTData:
    """The examples of one SFT run: training (conversations, mixed captions and text), held-out conversations,
    and the captions alone (the vision warm-up's data)."""

    train: list[Example]
    val: list[Example]
    captions: list[Example]
    stats: dict


def load_sft_data(cfg: SFTConfig, tok: Tokenizer, image_tokens: int, seq_len: int) -> SFTData:
    chats, stats = load_chat_examples(cfg.data, tok, image_tokens, seq_len + 1)
    if not chats:
        raise UserError("no usable conversations in --data (every one was too long or had no answer)")
    train_ex, val_ex = split_val(chats, cfg.val_fraction, cfg.seed)
    captions = (load_caption_examples(cfg.captions, tok, image_tokens, seq_len + 1) if cfg.captions else [])
    train_ex = _mix(train_ex, captions, cfg.caption_mix, cfg.seed)
    if cfg.text_mix > 0:
        if not cfg.text_data:
            raise UserError("--text-mix needs --text-data")
        chat_tokens = sum(len(e.ids) for e in train_ex)
        want = int(chat_tokens * cfg.text_mix / (1 - cfg.text_mix))
        text = load_text_examples(cfg.text_data, tok, seq_len + 1, want, cfg.seed)
        train_ex = train_ex + text
        stats["text_examples"] = len(text)
    return SFTData(train_ex, val_ex, captions, stats)


def _resuming(cfg: SFTConfig, tower_frozen: bool) -> bool:
    """Whether cfg.out holds a run to resume, checking that it froze the tower as this one does."""
    out = Path(cfg.out)
    resuming = cfg.resume and ((out / "resume" / "train_state.json").is_file()
                               or (out / ".resume-old" / "train_state.json").is_file())
    if resuming and (out / "config.json").is_file():
        before = read_config(out).get("tower_frozen")
        if before is not None and before != tower_frozen:
            # the optimizer state holds the tower's moments or not: it only fits the same setting
            raise UserError(f"{out} was trained {'with' if before else 'without'} --freeze-tower; resume it "
                            "the same way")
    return resuming


def _image_token_frac(examples: list[Example], tok: Tokenizer) -> float:
    return sum(e.ids.count(tok.image_id) for e in examples) / max(1, sum(len(e.ids) for e in examples))


def _tower_stage(model, cfg: SFTConfig, tok: Tokenizer, device: torch.device, dist_info: Dist) -> dict:
    """The fresh vision tower alone on the captions (train/tower_pretrain.py)."""
    summary = pretrain_tower(
        model.vision, caption_bags(cfg.captions, tok, cfg.tower_pairs), steps=cfg.tower_steps,
        batch_size=cfg.tower_batch_size,
        lr=cfg.tower_lr, seed=cfg.seed, device=device, dtype=compute_dtype(device, cfg.dtype, training=True),
        optimizer=cfg.optimizer,
        log=None if cfg.quiet or dist_info.rank else print)
    summary["pairs_min_count"] = cfg.tower_pairs
    return summary


def _vision_warmup(model, captions, batches, cfg: SFTConfig, common: dict, tok, dist_info, out: Path) -> dict:
    """LLaVA stage 1: train the vision tower and projector on captions with the decoder frozen."""
    for p in model.lm.parameters():
        p.requires_grad_(False)
    try:
        tc = TrainConfig(max_steps=cfg.vision_warmup_steps, lr=cfg.vision_warmup_lr,
                         warmup_steps=min(20, cfg.vision_warmup_steps // 5 + 1), eval_every=10 ** 9, **common)
        img_frac = _image_token_frac(captions, tok)
        s = train(model, batches, tc, out, tokenizer=tok, extra_config={"stage": "sft-vision-warmup"},
                  dist_info=dist_info, flops_per_token=model.flops_per_token(batches.seq_len, img_frac))
    finally:
        for p in model.lm.parameters():
            p.requires_grad_(True)
    return {k: s[k] for k in ("steps", "wall_s", "tokens")}


# ---- CLI -------------------------------------------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning on (multimodal) conversations",
                       description="Fine-tune a checkpoint on OpenAI-messages JSONL conversations with the loss on "
                       "assistant tokens only. A text-only base gets a vision tower when the data has images.")
    p.add_argument("--base", required=True, metavar="DIR", help="checkpoint folder to start from")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE", help="conversation JSONL files")
    p.add_argument("--out", required=True, metavar="DIR")

    def opt(name: str, *flags: str, **kw) -> None:
        add_option(p, SFTConfig, name, *flags, **kw)

    opt("max_steps", type=int)
    opt("batch_size", type=int, help="packed sequences per step")
    opt("lr", type=float, help="peak learning rate of the main stage")
    opt("lr_warmup_steps", type=int, help="steps of linear learning-rate warmup in the main stage")
    opt("vision_lr_mult", type=float,
        help="the vision tower and projector train at lr times this in the main stage")
    opt("projector_lr_mult", type=float, help="the projector trains at that rate times this (a fresh "
        "projector between a pretrained tower and decoder learns faster with larger steps)")
    opt("freeze_tower", action="store_true", help="keep the vision tower as it starts the main stage (after "
        "--tower-steps, or the base's); only the projector and decoder train, and images run forward only")
    opt("seq_len", type=int, help="default: the base model's")
    opt("vision", help="vision preset for a text-only base: tiny, 224, 384")
    opt("captions", metavar="FILE", help="image-caption JSONL ({image, text})")
    opt("tower_steps", type=int, help="a fresh vision tower first trains alone on --captions for this many "
        "steps (predicting each caption's words from the image)")
    opt("tower_pairs", type=int, metavar="N", help="the tower stage also predicts each pair of adjacent "
        "tokens that N or more captions share (\"orange square\" says which shape is orange; a bag of "
        "single words cannot); 0: words only")
    opt("vision_warmup_steps", type=int,
        help="vision-only steps on --captions first, decoder frozen (LLaVA stage 1)")
    opt("caption_mix", type=float, help="fraction of examples from --captions")
    opt("text_data", nargs="+", metavar="PATH", help="pretraining text to mix in")
    opt("text_mix", type=float, help="fraction of tokens from --text-data")
    add_run_options(p, SFTConfig)
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    summary = run_sft(config_from_args(SFTConfig, args))
    print(json.dumps({k: summary.get(k) for k in ("steps", "tokens", "final_val_loss", "wall_s", "examples",
                                                     "vision_attached")}))
    return 0
