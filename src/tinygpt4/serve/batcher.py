"""Generation off the event loop: one worker thread batches requests into `Engine.stream_batch` calls.

Requests wait in a bounded queue (full -> the API answers 429). The worker takes the oldest request, waits a
few milliseconds for others arriving at the same moment, and runs every compatible waiting request (same
sampling settings, fitting the context together) as one batch. Per-row work the engine does not know about
happens here: each choice's own max_tokens, its own stop strings (text that might be the start of a stop
string is held back, so a stop string never reaches the client), output moderation, and cancellation. A
finished or abandoned row answers True to the engine's `should_stop`, and the engine drops it from the KV
cache at the next step, so a disconnected client frees its slot.

Results go back to the event loop through `loop.call_soon_threadsafe` onto one asyncio.Queue per request.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

log = logging.getLogger("tinygpt4.serve")


class QueueFull(Exception):
    """The waiting queue is at its limit; the client should retry later."""


class GenerationError(Exception):
    """Generation failed inside the worker (details are logged server-side, never sent to the client)."""


@dataclass
class GenRequest:
    prompt: list[int]
    images: list = field(default_factory=list)  # decoded images for this prompt, in placeholder order
    n: int = 1
    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    top_logprobs: int = 0
    logprobs: bool = False
    blocks_output: Callable[[str], bool] | None = None  # moderation: True -> end with "content_filter"
    request_id: str = ""


@dataclass
class TokenInfo:
    token_id: int
    logprob: float
    top: dict[int, float] | None


@dataclass
class Delta:
    """New text for one choice; `finish_reason` is set on its last delta."""

    index: int
    text: str
    finish_reason: str | None = None
    tokens: list[TokenInfo] = field(default_factory=list)
    completion_tokens: int = 0


class Handle:
    """The event-loop side of one request."""

    _ids = itertools.count()

    def __init__(self, req: GenRequest, loop: asyncio.AbstractEventLoop):
        self.req = req
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.seq = next(self._ids)
        self.t_submit = time.perf_counter()
        self.t_first: float | None = None
        self.started = False

    def cancel(self) -> None:
        """Stop generating for this request (client gone); its rows leave the batch at the next step."""
        self.cancelled.set()

    def _put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    async def deltas(self) -> AsyncIterator[Delta]:
        """Every Delta until all n choices have finished."""
        remaining = self.req.n
        while remaining:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            if item.finish_reason is not None:
                remaining -= 1
            yield item


class _Row:
    """One choice being generated: its text pipeline from token ids to client-visible text."""

    def __init__(self, handle: Handle, index: int):
        self.handle = handle
        self.index = index
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.emitted = ""  # text already sent
        self.pending = ""  # text held back: it may be the start of a stop string
        self.n_tokens = 0
        self.done = False
        self.tokens: list[TokenInfo] = []

    def finish(self, text: str, reason: str) -> None:
        self.done = True
        self.handle._put(Delta(self.index, text, reason, self.tokens, self.n_tokens))
        self.tokens = []

    def emit(self, text: str) -> None:
        if text or self.tokens:
            self.handle._put(Delta(self.index, text, None, self.tokens))
            self.tokens = []

    def on_token(self, token_id: int, piece_bytes: bytes | None, eot: bool, info: TokenInfo | None) -> None:
        req = self.handle.req
        if self.handle.cancelled.is_set():
            self.done = True  # nobody to tell
            return
        if eot:
            self._release(self.pending + self.decoder.decode(b"", final=True), "stop")
            return
        self.n_tokens += 1
        if info is not None:
            self.tokens.append(info)
        buf = self.pending + self.decoder.decode(piece_bytes)
        last = self.n_tokens >= req.max_tokens
        if last:
            buf += self.decoder.decode(b"", final=True)
        cut = _earliest_stop(buf, req.stop)
        if cut is not None:
            self._release(buf[:cut], "stop")
            return
        if last:
            self._release(buf, "length")
            return
        hold = _stop_prefix_len(buf, req.stop)
        self.pending = buf[len(buf) - hold:] if hold else ""
        out = buf[:len(buf) - hold] if hold else buf
        if out and req.blocks_output is not None and req.blocks_output(self.emitted + out):
            self.finish("", "content_filter")
            return
        self.emitted += out
        self.emit(out)

    def _release(self, text: str, reason: str) -> None:
        req = self.handle.req
        if text and req.blocks_output is not None and req.blocks_output(self.emitted + text):
            self.finish("", "content_filter")
            return
        self.emitted += text
        self.finish(text, reason)


def _earliest_stop(text: str, stops: list[str]) -> int | None:
    best = None
    for s in stops:
        i = text.find(s)
        if i != -1 and (best is None or i < best):
            best = i
    return best


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of some stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class Batcher:
    def __init__(self, engine, *, max_batch: int = 32, max_queue: int = 64, batch_wait_s: float = 0.005,
                 metrics=None):
        self.engine = engine
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self.metrics = metrics
        self.context = engine.max_len
        self.eot_id = engine.tok.eot_id
        self._pending: collections.deque[Handle] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.active_rows = 0
        self._thread = threading.Thread(target=self._run, name="tinygpt4-batcher", daemon=True)

    # -- event-loop side -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, req: GenRequest, loop: asyncio.AbstractEventLoop | None = None) -> Handle:
        handle = Handle(req, loop or asyncio.get_running_loop())
        with self._cond:
            if self._stopping:
                raise QueueFull("server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are already waiting")
            self._pending.append(handle)
            self._gauge()
            self._cond.notify()
        return handle

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work, cancel what is still waiting, give the running batch `timeout` to finish."""
        with self._cond:
            self._stopping = True
            waiting = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for h in waiting:
            h._put(GenerationError("server is shutting down"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- worker side -----------------------------------------------------------------------------------
    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.set_queue(len(self._pending), self.active_rows)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                wait = self._pending[0].t_submit + self.batch_wait_s - time.perf_counter()
            if wait > 0:
                time.sleep(wait)  # let requests sent at the same moment join this batch
            batch = self._take_batch()
            if batch:
                self._run_batch(batch)

    def _take_batch(self) -> list[Handle]:
        with self._cond:
            while self._pending and self._pending[0].cancelled.is_set():
                self._pending.popleft()._put(GenerationError("cancelled"))
            if not self._pending:
                return []
            first = self._pending[0]
            key = _sampling_key(first)
            batch, rows = [], 0
            p_max, t_max = 0, 0
            for h in list(self._pending):
                r = h.req
                if h.cancelled.is_set() or _sampling_key(h) != key or rows + r.n > self.max_batch:
                    continue
                if max(p_max, len(r.prompt)) + max(t_max, r.max_tokens) > self.context:
                    continue
                batch.append(h)
                rows += r.n
                p_max, t_max = max(p_max, len(r.prompt)), max(t_max, r.max_tokens)
            for h in batch:
                self._pending.remove(h)
                h.started = True
            self.active_rows = rows
            self._gauge()
            return batch

    def _run_batch(self, batch: list[Handle]) -> None:
        rows: list[_Row] = []
        prompts, images = [], []
        for h in batch:
            for i in range(h.req.n):
                rows.append(_Row(h, i))
                prompts.append(h.req.prompt)
                images.append(h.req.images)
        first = batch[0].req
        want_top = max(h.req.top_logprobs for h in batch)
        tok = self.engine.tok
        if self.metrics is not None:
            self.metrics.observe_batch(len(rows))
        try:
            events = self.engine.stream_batch(
                prompts,
                max_new_tokens=max(h.req.max_tokens for h in batch),
                temperature=first.temperature,
                top_p=first.top_p,
                seed=first.seed,
                images=images if any(images) else None,
                top_logprobs=want_top,
                should_stop=lambda r: rows[r].done or rows[r].handle.cancelled.is_set(),
            )
            for ev in events:
                row = rows[ev.row]
                if row.done:
                    continue
                h = row.handle
                if h.t_first is None:
                    h.t_first = time.perf_counter()
                if ev.token_id is None:
                    continue
                eot = ev.token_id == self.eot_id
                info = None
                if h.req.logprobs and not eot:
                    top = None
                    if h.req.top_logprobs and ev.top_logprobs:
                        top = dict(itertools.islice(ev.top_logprobs.items(), h.req.top_logprobs))
                    info = TokenInfo(ev.token_id, ev.logprob, top)
                row.on_token(ev.token_id, None if eot else tok.token_bytes(ev.token_id), eot, info)
                if ev.finish_reason is not None and not row.done:
                    row.finish(row.pending, "length")  # the engine ended the row (context): say so
        except Exception as e:  # a bug or an engine error: every unfinished row gets a generic error
            log.exception("generation failed for a batch of %d rows", len(rows))
            failed = {id(r.handle): r.handle for r in rows if not r.done}
            for r in rows:
                r.done = True
            for h in failed.values():
                h._put(GenerationError(type(e).__name__))
        finally:
            for row in rows:
                if not row.done and not row.handle.cancelled.is_set():
                    row.finish(row.pending, "length")
            with self._cond:
                self.active_rows = 0
                self._gauge()


def _sampling_key(h: Handle) -> tuple:
    """Requests batch together only when one engine call can serve them all. A seeded request runs alone,
    so its output does not depend on what else was in the batch."""
    r = h.req
    if r.temperature <= 0:
        return ("greedy",)
    if r.seed is not None:
        return ("seeded", h.seq)
    return ("sample", r.temperature, r.top_p)
