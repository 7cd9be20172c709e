"""A judge model behind any OpenAI-compatible /v1/chat/completions endpoint, asked the rubric's questions.

The system prompt is `rubric.rubric_text()`; the user message holds the conversation and the response. The
answer is parsed leniently (a JSON object inside code fences or prose, yes/no/true/1 in any case, or
"name: yes" lines, or just a class letter). Replies that parse are kept in a JSONL cache keyed by a hash of the
model and the request, so grading the same responses again sends nothing. Failures raise `JudgeFailure` with a
one-line reason; the grader turns that into an abstention.

Standard library only (urllib), like evals/endpoint.py, which safety/ may not import.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.safety import rubric

_YES = {"yes", "y", "true", "1", "t"}
_NO = {"no", "n", "false", "0", "f", "none"}
_FENCE = re.compile(r"```(?:json|JSON)?")
_LINE = re.compile(r"^[\s\-*\"']*([A-Za-z_ ]+?)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9]+)", re.MULTILINE)
_BARE_CLASS = re.compile(r"^\W*\(?([ABCD])\)?\W*$")
_LABELLED_CLASS = re.compile(r"\b(?i:class|answer|classification)\b(?:\s+is)?\W{0,5}\(?([ABCD])\b")
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JudgeFailure(Exception):
    """The judge gave no usable answer (timeout, HTTP error, garbage); the message is the reason."""


@dataclass
class JudgeAnswer:
    propositions: dict[str, bool] = field(default_factory=dict)  # empty when only a class came back
    cls: str | None = None
    prompt_type: str | None = None
    missing: list[str] = field(default_factory=list)  # propositions the judge did not answer


def base_url(url: str) -> str:
    """The API root (".../v1") of a server URL, as the OpenAI client writes it."""
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        url = url.removesuffix(suffix)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"judge endpoint must be an http(s) URL, got {url!r}")
    return url + "/v1" if parts.path in ("", "/") else url


# ---- parsing ----------------------------------------------------------------------------------------------

def _truth(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value >= 0.5
    if isinstance(value, str):
        word = value.strip().strip(".!\"'").lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
    return None


def _json_objects(text: str):
    """Every JSON object in the text, outermost first, found by decoding from each '{'."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield obj


def _key(k: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(k).strip().lower())


def _from_mapping(pairs: dict) -> JudgeAnswer | None:
    nested = [v for v in pairs.values() if isinstance(v, dict)]  # {"propositions": {...}, "class": "A"}
    pairs = {_key(k): v for d in (*nested, pairs) for k, v in d.items()}
    props = {n: t for n in rubric.PROPOSITION_NAMES if (t := _truth(pairs.get(n))) is not None}
    cls = str(pairs.get("class", "")).strip().strip("()").upper()[:1] or None
    cls = cls if cls in rubric.CLASSES else None
    ptype = _key(pairs.get("prompt_type", "")) or None
    if not props and cls is None:
        return None
    missing = [n for n in rubric.PROPOSITION_NAMES if n not in props] if props else []
    return JudgeAnswer(props, cls, ptype if ptype in rubric.PROMPT_TYPES else None, missing)


def parse_answer(text: str) -> JudgeAnswer | None:
    """The judge's answer, or None when nothing usable is in it. A JSON object wins; then "name: yes" lines;
    then a bare class letter (classes only, no propositions)."""
    if not isinstance(text, str) or not text.strip():
        return None
    cleaned = _FENCE.sub("", text)
    for obj in _json_objects(cleaned):
        answer = _from_mapping(obj)
        if answer is not None:
            return answer
    answer = _from_mapping({k: v for k, v in _LINE.findall(cleaned)})
    if answer is not None:
        return answer
    m = _BARE_CLASS.match(cleaned.strip()) or _LABELLED_CLASS.search(cleaned)
    return JudgeAnswer(cls=m.group(1).upper()) if m else None


# ---- the request ------------------------------------------------------------------------------------------

def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # images are not sent: the rubric is about the text
        return " ".join(p.get("text", "") if p.get("type") == "text" else "[image]"
                        for p in content if isinstance(p, dict))
    return ""


def judge_messages(conversation: list[dict], response: str, prompt_type: str | None) -> list[dict]:
    turns = "\n".join(f"{m.get('role', 'user')}: {_content_text(m.get('content'))}"
                      for m in conversation if isinstance(m, dict))
    if prompt_type:
        ask = f"The prompt's type is: {prompt_type}."
    else:
        ask = ("Also classify the prompt: add \"prompt_type\": one of " + ", ".join(rubric.PROMPT_TYPES)
               + " to the JSON object.")
    user = (f"[CONVERSATION]\n{turns}\n[/CONVERSATION]\n[RESPONSE]\n{response}\n[/RESPONSE]\n\n{ask} "
            "Answer about the RESPONSE only, with one JSON object.")
    return [{"role": "system", "content": rubric.rubric_text()}, {"role": "user", "content": user}]


class JudgeCache:
    """JSONL of {"key", "reply"}; read once, appended under a lock (several grading threads share it)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.replies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._torn = False  # the file ends mid-line (a killed run): the next record starts on a new line
        if self.path and self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._torn = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    self.replies[rec["key"]] = rec["reply"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # that torn line's item is asked again

    def get(self, key: str) -> str | None:
        return self.replies.get(key)

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self.replies[key] = reply
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("\n" * self._torn + json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")
                self._torn = False


class JudgeClient:
    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 2, backoff: float = 1.0, cache: str | Path | None = None, max_tokens: int = 400):
        self.base = base_url(url)
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.retries, self.backoff, self.max_tokens = timeout, retries, backoff, max_tokens
        self.cache = JudgeCache(cache)
        self.requests = 0  # HTTP requests actually sent (the cache's savings show here)
        self._count_lock = threading.Lock()

    def _post_once(self, payload: dict) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base + "/chat/completions", data=json.dumps(payload).encode("utf-8"),
                                     headers=headers, method="POST")
        with self._count_lock:
            self.requests += 1
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            reply = json.loads(resp.read().decode("utf-8"))
        try:
            return reply["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise JudgeFailure(f"unexpected reply shape: {str(reply)[:120]}") from None

    def _post(self, payload: dict) -> str:
        """One answer, retrying timeouts, dropped connections, 429 and 5xx with exponential backoff."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return self._post_once(payload)
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code not in _RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (json.JSONDecodeError, UnicodeDecodeError):
                last = "the reply is not JSON"
        raise JudgeFailure(f"judge {self.base}: {last} (after {attempt + 1} tries)")

    def judge(self, conversation: list[dict], response: str, prompt_type: str | None = None) -> JudgeAnswer:
        messages = judge_messages(conversation, response, prompt_type)
        payload = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        key = hashlib.sha256(json.dumps([self.model, messages], ensure_ascii=False).encode()).hexdigest()
        reply = self.cache.get(key)
        if reply is None:
            reply = self._post(payload)
        answer = parse_answer(reply)
        if answer is None:
            raise JudgeFailure(f"unusable answer: {reply.strip()[:80]!r}")
        if self.cache.get(key) is None:  # only answers that parse are kept: garbage is asked again next time
            self.cache.put(key, reply)
        return answer
