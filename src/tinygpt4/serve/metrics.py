"""Prometheus text exposition (format 0.0.4) for the server, without a client library.

Counters and histograms are updated from the event loop and the generation thread, so one lock guards them.
"""

from __future__ import annotations

import threading

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


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}  # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft = _Histogram(LATENCY_BUCKETS)
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_rows = _Histogram(BATCH_BUCKETS)
        self.moderation: dict[tuple[str, str], int] = {}  # (stage, action) -> count
        self.queue_depth = 0
        self.active_rows = 0

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1

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
            key = (stage, action)
            self.moderation[key] = self.moderation.get(key, 0) + 1

    def set_queue(self, depth: int, active_rows: int) -> None:
        with self._lock:
            self.queue_depth = depth
            self.active_rows = active_rows

    def render(self) -> str:
        with self._lock:
            out = ["# HELP tinygpt4_requests_total HTTP requests by endpoint and status code.",
                   "# TYPE tinygpt4_requests_total counter"]
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f'tinygpt4_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            out += ["# HELP tinygpt4_prompt_tokens_total Prompt tokens processed (counted by the tokenizer).",
                    "# TYPE tinygpt4_prompt_tokens_total counter",
                    f"tinygpt4_prompt_tokens_total {self.prompt_tokens}",
                    "# HELP tinygpt4_completion_tokens_total Tokens generated.",
                    "# TYPE tinygpt4_completion_tokens_total counter",
                    f"tinygpt4_completion_tokens_total {self.completion_tokens}",
                    "# HELP tinygpt4_time_to_first_token_seconds Time from request arrival to its first token.",
                    "# TYPE tinygpt4_time_to_first_token_seconds histogram"]
            out += self.ttft.lines("tinygpt4_time_to_first_token_seconds")
            out += ["# HELP tinygpt4_request_latency_seconds End-to-end latency of completed generations.",
                    "# TYPE tinygpt4_request_latency_seconds histogram"]
            out += self.latency.lines("tinygpt4_request_latency_seconds")
            out += ["# HELP tinygpt4_batch_rows Rows (choices) per engine batch.",
                    "# TYPE tinygpt4_batch_rows histogram"]
            out += self.batch_rows.lines("tinygpt4_batch_rows")
            out += ["# HELP tinygpt4_moderation_decisions_total Moderation decisions that found a category.",
                    "# TYPE tinygpt4_moderation_decisions_total counter"]
            for (stage, action), n in sorted(self.moderation.items()):
                out.append(f'tinygpt4_moderation_decisions_total{{stage="{stage}",action="{action}"}} {n}')
            out += ["# HELP tinygpt4_queue_depth Requests waiting for a generation slot.",
                    "# TYPE tinygpt4_queue_depth gauge",
                    f"tinygpt4_queue_depth {self.queue_depth}",
                    "# HELP tinygpt4_active_rows Rows in the running batch.",
                    "# TYPE tinygpt4_active_rows gauge",
                    f"tinygpt4_active_rows {self.active_rows}"]
            return "\n".join(out) + "\n"
