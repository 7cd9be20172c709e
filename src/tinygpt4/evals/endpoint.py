"""An OpenAI-compatible HTTP endpoint as a LanguageModel (standard library only).

generate  -> POST {base}/chat/completions, one request per conversation, a few in flight at once.
complete  -> POST {base}/completions.
  Sampling settings (temperature, top_p, seed, n) are passed through. n samples are asked for in requests
  of at most `max_n` choices (servers cap n); the request starting at sample j carries seed + j.
loglikelihood -> POST {base}/completions with echo=true and logprobs: the server returns the log-probability
  of every prompt token with its character offset, and the tokens from the end of the context onwards
  are summed. Servers that do not return prompt logprobs (most hosted chat APIs) make the log-likelihood
  tasks report "unsupported" rather than fail. A chat-formatted context needs the server's own chat
  template, which this API does not expose, so those requests are unsupported too.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tinygpt4.errors import UserError
from tinygpt4.evals.protocol import Context, Message, Unsupported, has_images

NO_LOGPROBS = "the endpoint does not return prompt logprobs (echo + logprobs on /v1/completions)"


def base_url(url: str) -> str:
    """Normalise a server URL to its API root: ".../v1" (the OpenAI client's convention)."""
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"endpoint must be an http(s) URL, got {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


class HTTPStatusError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def post_json(base: str, path: str, payload: dict, *, api_key: str | None = None, timeout: float = 120.0) -> dict:
    """POST a JSON payload to base + path and parse the JSON reply. An HTTP error status raises
    HTTPStatusError (with the server's message); an unreachable server or a reply that is not JSON, UserError."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(base + path, data=json.dumps(payload).encode("utf-8"), headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            body = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise HTTPStatusError(e.code, str(body)[:300]) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise UserError(f"endpoint {base}: {getattr(e, 'reason', e)}") from None
    except json.JSONDecodeError:
        raise UserError(f"endpoint {base}{path}: the reply is not JSON") from None


class EndpointModel:
    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout: float = 120.0,
                 concurrency: int = 4, supports_images: bool = True, max_n: int = 8):
        self.base = base_url(url)
        self.model = model
        self.name = f"{model} @ {self.base}"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.supports_images = supports_images
        self.max_n = max(1, max_n)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict) -> dict:
        return post_json(self.base, path, payload, api_key=self.api_key, timeout=self.timeout)

    def _map(self, fn, items: Sequence) -> list:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    # -- generation ------------------------------------------------------------------------------------
    def _sampled(self, one, inputs: list, n: int, seed: int | None) -> list[str]:
        """one(input, k, seed) -> k texts, asked in requests of at most max_n; flat, n per input in order."""
        jobs = [(x, j, min(self.max_n, n - j)) for x in inputs for j in range(0, n, self.max_n)]
        done = self._map(lambda job: one(job[0], job[2], None if seed is None else seed + job[1]), jobs)
        return [text for texts in done for text in texts]

    @staticmethod
    def _sampling(payload: dict, temperature: float, top_p: float | None, seed: int | None, k: int) -> dict:
        payload["temperature"] = temperature
        if top_p is not None:
            payload["top_p"] = top_p
        if seed is not None:
            payload["seed"] = seed
        if k > 1:
            payload["n"] = k
        return payload

    def _choices(self, reply: dict, k: int, path: str, field: str) -> list[str]:
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            texts = [(c["message"].get("content") if field == "message" else c.get("text")) or "" for c in choices]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise UserError(f"endpoint {self.base}{path}: unexpected reply {str(reply)[:200]}") from None
        if len(texts) < k:
            raise UserError(f"endpoint {self.base}{path}: asked for {k} choices, got {len(texts)}")
        return texts[:k]

    def generate(self, conversations: Sequence[list[Message]], max_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, *, top_p: float | None = None, seed: int | None = None,
                 n: int = 1) -> list[str]:
        def one(messages: list[Message], k: int, s: int | None) -> list[str]:
            payload = self._sampling({"model": self.model, "messages": messages, "max_tokens": max_tokens},
                                     temperature, top_p, s, k)
            if stop:
                payload["stop"] = list(stop)
            try:
                reply = self._post("/chat/completions", payload)
            except HTTPStatusError as e:
                if has_images(messages) and 400 <= e.status < 500:
                    raise Unsupported(f"the endpoint rejected image input ({e})") from None
                raise UserError(f"endpoint {self.base}/chat/completions: {e}") from None
            return self._choices(reply, k, "/chat/completions", "message")

        return self._sampled(one, list(conversations), n, seed)

    def complete(self, prompts: Sequence[str], max_tokens: int = 64, stop: Sequence[str] | None = None, *,
                 temperature: float = 0.0, top_p: float | None = None, seed: int | None = None,
                 n: int = 1) -> list[str]:
        def one(prompt: str, k: int, s: int | None) -> list[str]:
            payload = self._sampling({"model": self.model, "prompt": prompt, "max_tokens": max_tokens},
                                     temperature, top_p, s, k)
            if stop:
                payload["stop"] = list(stop)
            try:
                reply = self._post("/completions", payload)
            except HTTPStatusError as e:
                if 400 <= e.status < 500:
                    raise Unsupported(f"the endpoint has no /completions ({e})") from None
                raise UserError(f"endpoint {self.base}/completions: {e}") from None
            return self._choices(reply, k, "/completions", "text")

        return self._sampled(one, list(prompts), n, seed)

    # -- log-likelihood --------------------------------------------------------------------------------
    def _prompt_logprobs(self, text: str) -> tuple[list[float | None], list[int]]:
        payload = {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True,
                   "logprobs": 1}
        try:
            reply = self._post("/completions", payload)
        except HTTPStatusError as e:
            if 400 <= e.status < 500:
                raise Unsupported(f"{NO_LOGPROBS}: {e}") from None
            raise UserError(f"endpoint {self.base}/completions: {e}") from None
        try:
            lp = reply["choices"][0]["logprobs"]
            logprobs, offsets = list(lp["token_logprobs"]), [int(o) for o in lp["text_offset"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise Unsupported(NO_LOGPROBS) from None
        if not offsets or len(logprobs) != len(offsets) or all(x is None for x in logprobs[1:]):
            raise Unsupported(NO_LOGPROBS)
        return logprobs, offsets

    def loglikelihood(self, requests: Sequence[tuple[Context, str]]) -> list[float]:
        def one(req: tuple[Context, str]) -> float:
            context, continuation = req
            if not isinstance(context, str):
                raise Unsupported("chat-formatted contexts need the server's chat template")
            full = context + continuation
            logprobs, offsets = self._prompt_logprobs(full)
            start, end = len(context), len(full)
            total = 0.0
            for i, (lp, off) in enumerate(zip(logprobs, offsets)):
                tok_end = offsets[i + 1] if i + 1 < len(offsets) else end
                if off >= end:  # the generated token (and anything after the prompt)
                    break
                if tok_end > start and lp is not None:  # a token that overlaps the continuation
                    total += float(lp)
            return total

        return self._map(one, list(requests))

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        def one(text: str) -> float:
            logprobs, offsets = self._prompt_logprobs(text)
            return sum(float(lp) for lp, off in zip(logprobs, offsets) if lp is not None and off < len(text))

        return self._map(one, list(texts))
