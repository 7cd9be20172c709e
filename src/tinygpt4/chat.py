"""The one chat renderer: OpenAI messages -> token ids, loss mask and images, in a single pass.

Layout: <|bos|> then per message <|role|> content <|eot|>; each image is a run of `image_tokens` <|image|> ids
where it sits among the text parts. The loss mask is 1 exactly on assistant content and the assistant's
<|eot|>, so SFT learns to answer and to stop, and never learns the user's words. SFT, eval, the terminal chat
and the server all call this, so masks can never drift from the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.data.images import load_image_ref
from tinygpt4.errors import UserError
from tinygpt4.tokenizer import ROLES, Tokenizer


@dataclass
class RenderedChat:
    ids: list[int]
    loss_mask: list[int]
    images: list = field(default_factory=list)  # PIL images (or refs when load_images=False), in order
    dropped_turns: int = 0


def message_parts(msg: dict, where: str = "message") -> list[dict]:
    """Normalise content to a list of parts; validate roles and part types."""
    if not isinstance(msg, dict):
        raise UserError(f"{where}: a message must be an object")
    role = msg.get("role")
    if role not in ROLES:
        raise UserError(f"{where}: role must be one of {', '.join(ROLES)} (got {role!r})")
    content = msg.get("content")
    if content is None:
        content = ""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise UserError(f"{where}: content must be a string or a list of parts")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise UserError(f"{where}: part {j}: text part needs a string 'text'")
            parts.append(part)
        elif kind == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str) or not url:
                raise UserError(f"{where}: part {j}: image_url needs a 'url'")
            if role != "user":
                raise UserError(f"{where}: images are only accepted in user messages")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise UserError(f"{where}: part {j}: unsupported content part type {kind!r}")
    return parts


def count_images(messages: list[dict]) -> int:
    return sum(p["type"] == "image_url" for i, m in enumerate(messages) for p in message_parts(m, f"messages[{i}]"))


def _render_message(msg: dict, tok: Tokenizer, image_tokens: int, where: str):
    parts = message_parts(msg, where)
    role = msg["role"]
    train = 1 if role == "assistant" else 0
    ids, mask, refs = [tok.role_ids[role]], [0], []
    for part in parts:
        if part["type"] == "text":
            t = tok.encode(part["text"])
            ids += t
            mask += [train] * len(t)
        else:
            if image_tokens <= 0:
                raise UserError(f"{where}: this model does not accept images")
            ids += [tok.image_id] * image_tokens
            mask += [0] * image_tokens
            refs.append(part["image_url"]["url"])
    ids.append(tok.eot_id)
    mask.append(train)
    return ids, mask, refs


def render_chat(
    messages: list[dict],
    tok: Tokenizer,
    *,
    image_tokens: int = 0,
    add_generation_prompt: bool = False,
    max_len: int | None = None,
    image_root: str | Path | None = None,
    load_images: bool = True,
) -> RenderedChat:
    """Render a conversation. Over max_len, the oldest whole turns (a user message and the replies after it)
    are dropped, system messages kept; image placeholder runs are never cut."""
    if not isinstance(messages, list) or not messages:
        raise UserError("messages must be a non-empty list")
    segs = [_render_message(m, tok, image_tokens, f"messages[{i}]") for i, m in enumerate(messages)]
    roles = [m["role"] for m in messages]
    tail = [tok.assistant_id] if add_generation_prompt else []

    def total(keep: list[int]) -> int:
        return 1 + sum(len(segs[i][0]) for i in keep) + len(tail)

    keep = list(range(len(messages)))
    dropped = 0
    if max_len is not None and total(keep) > max_len:
        system = [i for i in keep if roles[i] == "system"]
        rest = [i for i in keep if roles[i] != "system"]
        # Turn starts: each user message (and anything before the first one).
        starts = [k for k, i in enumerate(rest) if roles[i] == "user" and k > 0]
        while starts and total(system + rest) > max_len:
            cut = starts.pop(0)
            dropped += 1
            rest = rest[cut:]
            starts = [s - cut for s in starts]
        keep = system + rest
        if total(keep) > max_len:
            raise UserError(f"conversation is too long: {total(keep)} tokens even with only the last turn kept "
                            f"(limit {max_len})")
    ids, mask, refs = [tok.bos_id], [0], []
    for i in keep:
        s_ids, s_mask, s_refs = segs[i]
        ids += s_ids
        mask += s_mask
        refs += s_refs
    ids += tail
    mask += [0] * len(tail)
    images = refs
    if load_images and refs:
        images = [load_image_ref(r, image_root) for r in refs]
    return RenderedChat(ids, mask, images, dropped)


def last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return "".join(p.get("text", "") for p in message_parts(m))
    return ""
