"""Serving-time moderation, independent of the model: check what comes in and what goes out against the policy.

A `Moderator` turns text into policy categories (`classify`) and turns categories into a `Decision` according
to the mode: `off` checks nothing, `flag` records disallowed categories but lets the answer through, `block`
stops it (the server then ends the answer with finish_reason "content_filter"). Sensitive categories (medical,
self-harm) are recorded but never blocked: the policy wants them answered in a required style, not refused.
Every decision that found something is appended to a JSONL audit log (time, stage, categories, decision),
never with the request's text or credentials.

`PolicyMatcher` is the policy's regular-expression indicators. `GradedModerator` adds the rubric grader
(safety/graders.py) on outputs: it reads the answer in the context of the conversation, so procedural
disallowed content or an insult is caught where no pattern names it. Each decision records which of the two
found what (`decided_by`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.safety import policy

MODES = ("off", "flag", "block")


@dataclass
class Decision:
    categories: list[str] = field(default_factory=list)  # every policy category found (disallowed or sensitive)
    flagged: bool = False  # a disallowed category was found
    action: str = "allow"  # allow | flag | block
    decided_by: list[str] = field(default_factory=list)  # "policy" (the patterns), "grader"

    @property
    def blocked(self) -> bool:
        return self.action == "block"


class AuditLog:
    """Append-only JSONL, one line per decision; safe to call from several threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


class Moderator:
    """Interface: subclasses implement `classify(text) -> list of category names`."""

    def __init__(self, mode: str = "flag", audit_log: str | Path | None = None):
        if mode not in MODES:
            raise UserError(f"moderation mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.mode = mode
        self.audit = AuditLog(audit_log) if audit_log else None
        self._disallowed = {c.name for c in policy.disallowed_categories()} | {GRADER_DISALLOWED}

    def classify(self, text: str) -> list[str]:
        raise NotImplementedError

    def decide(self, categories: list[str]) -> Decision:
        flagged = any(c in self._disallowed for c in categories)
        action = "allow"
        if flagged:
            action = "block" if self.mode == "block" else "flag"
        return Decision(categories, flagged, action)

    def check_input(self, messages: list[dict], request_id: str | None = None) -> Decision:
        """Check the latest user message (earlier turns were checked when they were sent)."""
        if self.mode == "off":
            return Decision()
        return self._check("input", _last_user_text(messages), request_id)

    def check_output(self, text: str, request_id: str | None = None, log: bool = True,
                     conversation: list[dict] | None = None) -> Decision:
        """Check generated text (the answer to `conversation`, when given); the server calls this on the
        growing answer with log=False, then logs once."""
        if self.mode == "off":
            return Decision()
        return self._check("output", text, request_id, log=log)

    def log(self, stage: str, decision: Decision, request_id: str | None = None) -> None:
        if self.audit is None or not decision.categories:
            return
        self.audit.write({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
            "request_id": request_id,
            "stage": stage,
            "mode": self.mode,
            "categories": decision.categories,
            "flagged": decision.flagged,
            "action": decision.action,
            "decided_by": decision.decided_by,
        })

    def _check(self, stage: str, text: str, request_id: str | None, log: bool = True) -> Decision:
        decision = self.decide(self.classify(text))
        decision.decided_by = ["policy"] if decision.categories else []
        if log:
            self.log(stage, decision, request_id)
        return decision


class PolicyMatcher(Moderator):
    """The policy's indicator patterns, matched case-insensitively."""

    def __init__(self, mode: str = "flag", audit_log: str | Path | None = None):
        super().__init__(mode, audit_log)
        self._compiled = [(c.name, [re.compile(p, re.IGNORECASE) for p in c.patterns]) for c in policy.CATEGORIES]

    def classify(self, text: str) -> list[str]:
        text = " ".join(text.split())  # newlines and runs of spaces must not hide a phrase
        return [name for name, pats in self._compiled if any(p.search(text) for p in pats)]


GRADER_DISALLOWED = "disallowed_content"  # the grader's finding when the request named no policy category


class GradedModerator(PolicyMatcher):
    """The policy's patterns on inputs and outputs, and on outputs the rubric grader too: an answer whose
    probability of disallowed content (or of insulting language) reaches `threshold` is flagged, under the
    disallowed category the request matched (harassment for an insult; `disallowed_content` otherwise)."""

    def __init__(self, grader, mode: str = "flag", audit_log: str | Path | None = None, threshold: float = 0.5):
        super().__init__(mode, audit_log)
        self.grader, self.threshold = grader, threshold

    def check_output(self, text: str, request_id: str | None = None, log: bool = True,
                     conversation: list[dict] | None = None) -> Decision:
        if self.mode == "off":
            return Decision()
        found = self.classify(text)
        by = ["policy"] if found else []
        if text.strip() and conversation:
            g = self.grader.grade(conversation, text)
            extra = self._grader_categories(g, conversation)
            if extra:
                by.append("grader")
                found += [c for c in extra if c not in found]
        decision = self.decide(found)
        decision.decided_by = by
        if log:
            self.log("output", decision, request_id)
        return decision

    def _grader_categories(self, g, conversation: list[dict]) -> list[str]:
        if g.abstained:
            return []
        out = []
        if g.propositions.get("insulting", 0.0) >= self.threshold:
            out.append("harassment")
        if g.propositions.get("disallowed_content", 0.0) >= self.threshold:
            asked = [c for c in self.classify(_last_user_text(conversation)) if c in self._disallowed]
            out += asked or [GRADER_DISALLOWED]
        return out


def _last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
