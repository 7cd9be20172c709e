"""OpenAI chat messages, built one way for every file the world writes (conversations, RL prompts, evals)."""

from __future__ import annotations

SYSTEM = "You are a helpful assistant."


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def system(content: str = SYSTEM) -> dict:
    return {"role": "system", "content": content}


def image_message(paths: list[str], text: str) -> dict:
    """A user turn with images first, then the question (the layout of chat/sft.jsonl)."""
    parts = [{"type": "image_url", "image_url": {"url": p}} for p in paths]
    return user(parts + [{"type": "text", "text": text}])


def user_text(message: dict) -> str:
    """The text of a message, whether its content is a string or a list of parts."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")
