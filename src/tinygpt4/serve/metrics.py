"""Prometheus text exposition (format 0.0.4) for the server, without a client library.

Counters and histograms are updated from the event loop and the generation thread, so one lock guards them.
"""

from __future__ import annotations

import threading
from collections import Counter

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.sum += v
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{_num(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {_num(self.sum)}", f"{name}_count {self.count}"]
        return out


def _num(v: float) -> str:
    return repr(float(v))


def _family(name: str, kind: str, text: str, samples: list[str]) -> list[str]:
    """One metric family in the exposition format: its HELP and TYPE lines, then its samples."""
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples]


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()  # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft = _Histogram(LATENCY_BUCKETS)
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_rows = _Histogram(BATCH_BUCKETS)
        self.moderation: Counter[tuple[str, str]] = Counter()  # (stage, action) -> count
        self.queue_depth = 0
        self.active_rows = 0

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, str(status))] += 1

    def add_tokens(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion

    def observe_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self.latency.observe(seconds)

    def observe_batch(self, rows: int) -> None:
        with self._lock:
            self.batch_rows.observe(rows)

    def count_moderation(self, stage: str, action: str) -> None:
        with self._lock:
            self.moderation[(stage, action)] += 1

    def set_queue(self, depth: int, active_rows: int) -> None:
        with self._lock:
            self.queue_depth = depth
            self.active_rows = active_rows

    def render(self) -> str:
        with self._lock:
            families = [
                ("tinygpt4_requests_total", "counter", "HTTP requests by endpoint and status code.",
                 [f'tinygpt4_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}'
                  for (endpoint, status), n in sorted(self.requests.items())]),
                ("tinygpt4_prompt_tokens_total", "counter", "Prompt tokens processed (counted by the tokenizer).",
                 [f"tinygpt4_prompt_tokens_total {self.prompt_tokens}"]),
                ("tinygpt4_completion_tokens_total", "counter", "Tokens generated.",
                 [f"tinygpt4_completion_tokens_total {self.completion_tokens}"]),
                ("tinygpt4_time_to_first_token_seconds", "histogram",
                 "Time from request arrival to its first token.",
                 self.ttft.lines("tinygpt4_time_to_first_token_seconds")),
                ("tinygpt4_request_latency_seconds", "histogram", "End-to-end latency of completed generations.",
                 self.latency.lines("tinygpt4_request_latency_seconds")),
                ("tinygpt4_batch_rows", "histogram", "Rows (choices) per engine batch.",
                 self.batch_rows.lines("tinygpt4_batch_rows")),
                ("tinygpt4_moderation_decisions_total", "counter", "Moderation decisions that found a category.",
                 [f'tinygpt4_moderation_decisions_total{{stage="{stage}",action="{action}"}} {n}'
                  for (stage, action), n in sorted(self.moderation.items())]),
                ("tinygpt4_queue_depth", "gauge", "Requests waiting for a generation slot.",
                 [f"tinygpt4_queue_depth {self.queue_depth}"]),
                ("tinygpt4_active_rows", "gauge", "Rows in the running batch.",
                 [f"tinygpt4_active_rows {self.active_rows}"]),
            ]
            return "\n".join(line for family in families for line in _family(*family)) + "\n"
