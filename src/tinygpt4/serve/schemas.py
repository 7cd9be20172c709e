"""Request models for the OpenAI-compatible API.

Types are strict (a string is not a number, a number is not a boolean), fields the API does not know are
ignored, and fields it knows but does not implement are rejected with a clear message instead of silently
changing the meaning of a request. Limits that depend on the server's settings (messages, images, n,
max_tokens) are checked by the API, not here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Known OpenAI fields that would change the answer's meaning if ignored.
UNSUPPORTED_FIELDS = ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "audio",
                      "modalities", "prediction", "web_search_options")


def unsupported_field(data: dict) -> str | None:
    """The first known-but-unsupported field that is set, if any."""
    for name in UNSUPPORTED_FIELDS:
        if data.get(name) not in (None, [], {}):
            return name
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_tool_calls(cls, data):
        if isinstance(data, dict) and data.get("tool_calls"):
            raise ValueError("tool calls are not supported")
        return data

    def to_chat(self) -> dict:
        """The message in the chat renderer's format ('developer' is the newer name for 'system')."""
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, list):
            content = [p.model_dump(exclude_none=True) for p in self.content]
        else:
            content = self.content or ""
        return {"role": role, "content": content}


class StreamOptions(_Strict):
    include_usage: bool = False


class ResponseFormat(_Strict):
    type: Literal["text"]


class ChatCompletionRequest(_Strict):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, v):
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are accepted")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.top_logprobs and not self.logprobs:
            raise ValueError("'top_logprobs' requires 'logprobs': true")
        return self

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
