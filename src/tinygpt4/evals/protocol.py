"""The one interface every evaluation talks to (the boundary lm-evaluation-harness draws).

A backend answers two kinds of question:

* how likely is this continuation after this context (multiple choice, TruthfulQA, bits per byte);
* what does the model say to these messages (factuality, image QA, follow-ups).

A context is either plain text or a list of OpenAI chat messages; a chat context is rendered with the
backend's chat template and an open assistant turn, and the continuation is scored as the start of that
assistant turn. Backends that cannot answer a kind of question raise `Unsupported`, and the task that
asked writes an "unsupported" result instead of numbers.

Generation is greedy unless a temperature above 0 is given; `top_p` then keeps the smallest set of tokens
whose probability reaches it (nucleus sampling), and `seed` makes the draw reproducible: the same call with
the same seed on the same backend returns the same texts. `n` draws several samples per input in one call;
the result is then flat, the n samples of input i at indices i*n .. i*n+n-1 (`grouped` splits it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]
Context = str | list[Message]


class Unsupported(Exception):
    """The backend cannot answer this kind of request (e.g. no prompt logprobs, no image input)."""


@runtime_checkable
class LanguageModel(Protocol):
    name: str
    supports_images: bool

    def loglikelihood(self, requests: Sequence[tuple[Context, str]]) -> list[float]:
        """Sum of log p(continuation | context) in nats, one per request, in order."""
        ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        """Sum of log p(text) in nats over every token of each text (as for perplexity)."""
        ...

    def generate(
        self,
        conversations: Sequence[list[Message]],
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        *,
        top_p: float | None = None,
        seed: int | None = None,
        n: int = 1,
    ) -> list[str]:
        """The assistant's reply to each conversation (n per conversation, flat). Content may hold image_url
        parts."""
        ...

    def complete(
        self,
        prompts: Sequence[str],
        max_tokens: int = 64,
        stop: Sequence[str] | None = None,
        *,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        n: int = 1,
    ) -> list[str]:
        """Plain-text continuation of each prompt (no chat template), for base models; greedy by default."""
        ...


# Optional: a backend that knows its context window may also define
#     max_length: int                                   the longest sequence it scores, in tokens
#     count_tokens(texts: Sequence[str]) -> list[int]   tokens each plain-text context occupies
# and few-shot prompts are then shortened by whole examples to fit, instead of being cut at the left.


def text_of(content: str | list[dict] | None) -> str:
    """The text of a message's content, image parts dropped."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def image_urls(content: str | list[dict] | None) -> list[str]:
    """The image URLs (data URLs or relative paths) of a message's content, in order."""
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]


def has_images(conversation: list[Message]) -> bool:
    return any(image_urls(m.get("content")) for m in conversation)


def grouped(outputs: Sequence[str], n: int) -> list[list[str]]:
    """A flat list of n samples per input (what generate/complete return with n) as one list per input."""
    if n < 1 or len(outputs) % n:
        raise ValueError(f"{len(outputs)} outputs are not a whole number of groups of {n}")
    return [list(outputs[i:i + n]) for i in range(0, len(outputs), n)]
