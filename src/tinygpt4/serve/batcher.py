"""Generation off the event loop: one worker thread runs continuous batching over a `Decoder`.

Requests wait in a bounded queue (full -> the API answers 429). Between decoding steps the worker moves
waiting requests into the running batch (oldest first, while their rows fit in `max_batch`), so a new request
starts at the next step instead of after the answers in front of it; when the decoder is idle it waits a few
milliseconds first, so requests sent at the same moment share one prefill. Per-row work the decoder does not
know about happens here: each choice's max_tokens, its stop strings (text that might be the start of a stop
string is held back, so a stop string never reaches the client), output moderation, and cancellation. A
finished or abandoned row (a disconnected client) leaves the decoder before the next step, freeing its slot.

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

from tinygpt4.serve.decoder import RowSpec
from tinygpt4.stops import StopText

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

    async def batches(self) -> AsyncIterator[list[Delta]]:
        """Deltas in groups: each group is everything that has arrived by the time the consumer asks, so a
        slow reader gets fewer, larger pieces instead of falling behind. Ends when all n choices finished."""
        remaining = self.req.n
        while remaining:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            out = []
            for item in items:
                if isinstance(item, BaseException):
                    raise item
                if item.finish_reason is not None:
                    remaining -= 1
                out.append(item)
            yield out

    async def deltas(self) -> AsyncIterator[Delta]:
        """Every Delta until all n choices have finished."""
        async for group in self.batches():
            for d in group:
                yield d


def _deliver(items: list[tuple[Handle, Delta]]) -> None:
    for h, d in items:
        h.queue.put_nowait(d)


class _Row:
    """One choice being generated: its text pipeline from token ids to client-visible text."""

    def __init__(self, handle: Handle, index: int, outbox: list):
        self.handle = handle
        self.index = index
        self.outbox = outbox  # (handle, delta) pairs, handed to the event loop once per step
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.emitted = ""  # text already sent
        self.stops = StopText(handle.req.stop)
        self.n_tokens = 0
        self.done = False
        self.tokens: list[TokenInfo] = []

    def finish(self, text: str, reason: str) -> None:
        self.done = True
        self.outbox.append((self.handle, Delta(self.index, text, reason, self.tokens, self.n_tokens)))
        self.tokens = []

    def emit(self, text: str) -> None:
        if text or self.tokens:
            self.outbox.append((self.handle, Delta(self.index, text, None, self.tokens)))
            self.tokens = []

    def on_token(self, token_id: int, piece_bytes: bytes | None, eot: bool, info: TokenInfo | None) -> None:
        req = self.handle.req
        if self.handle.cancelled.is_set():
            self.done = True  # nobody to tell
            return
        if eot:
            text, hit = self.stops.feed(self.decoder.decode(b"", final=True))
            self._release(text if hit else text + self.stops.flush(), "stop")
            return
        self.n_tokens += 1
        if info is not None:
            self.tokens.append(info)
        raw = self.decoder.decode(piece_bytes)
        last = self.n_tokens >= req.max_tokens
        if last:
            raw += self.decoder.decode(b"", final=True)
        out, hit = self.stops.feed(raw)
        if hit:
            self._release(out, "stop")
            return
        if last:
            self._release(out + self.stops.flush(), "length")
            return
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


class Batcher:
    """Owns the decoder (only the worker thread touches it) and the queue of waiting requests."""

    def __init__(self, decoder, *, max_batch: int = 32, max_queue: int = 64, batch_wait_s: float = 0.005,
                 metrics=None):
        self.decoder = decoder
        self.tok = decoder.tok
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.batch_wait_s = batch_wait_s
        self.metrics = metrics
        self._pending: collections.deque[Handle] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._live: dict[int, _Row] = {}  # decoder row key -> row
        self._outbox: list[tuple[Handle, Delta]] = []
        self._keys = itertools.count()
        self.active_rows = 0
        self._thread = threading.Thread(target=self._run, name="tinygpt4-batcher", daemon=True)

    # -- event-loop side -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, req: GenRequest, loop: asyncio.AbstractEventLoop | None = None) -> Handle:
        handle = Handle(req, loop or asyncio.get_running_loop())
        with self._cond:
            self._drop_cancelled()
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
        """Stop the worker; whatever is still waiting or running gets an error."""
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

    def _drop_cancelled(self) -> None:
        for h in [h for h in self._pending if h.cancelled.is_set()]:
            self._pending.remove(h)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._live and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
                idle_wait = 0.0
                if not self._live and self._pending:
                    idle_wait = self._pending[0].t_submit + self.batch_wait_s - time.perf_counter()
            if idle_wait > 0:
                time.sleep(idle_wait)  # requests sent at the same moment share one prefill
            try:
                self._admit()
                self._retire()
                if self._live:
                    self._route(self.decoder.step())
                    self._retire()
                self._flush()
            except Exception as e:  # a bug or a device error: fail the running rows, keep serving
                log.exception("generation failed with %d rows running", len(self._live))
                self._fail_all(GenerationError(type(e).__name__))
        self._fail_all(GenerationError("server is shutting down"))

    def _admit(self) -> None:
        """Move waiting requests into the running batch, oldest first, while their rows fit."""
        with self._cond:
            self._drop_cancelled()
            taken = []
            rows = len(self._live)
            while self._pending:
                r = self._pending[0].req
                if rows + r.n > self.max_batch and (rows or taken):
                    break
                h = self._pending.popleft()
                h.started = True
                taken.append(h)
                rows += r.n
            self._gauge()
        if not taken:
            return
        specs = []
        for h in taken:
            r = h.req
            gen = self.decoder.make_generator(r.seed) if r.seed is not None and r.temperature > 0 else None
            for i in range(r.n):
                key = next(self._keys)
                self._live[key] = _Row(h, i, self._outbox)
                specs.append(RowSpec(key, r.prompt, r.max_tokens, r.images, r.temperature, r.top_p, gen,
                                     r.logprobs, r.top_logprobs))
        if self.metrics is not None:
            self.metrics.observe_batch(len(specs))
        try:
            self._route(self.decoder.add(specs))
        except Exception:
            self._flush()
            for s in specs:  # these rows never joined the decoder
                row = self._live.pop(s.key)
                if not row.done:
                    row.done = True
                    row.handle._put(GenerationError("prefill failed"))
            raise

    def _route(self, tokens) -> None:
        now = time.perf_counter()
        for t in tokens:
            row = self._live.get(t.key)
            if row is None or row.done:
                continue
            h = row.handle
            if h.t_first is None:
                h.t_first = now
            eot = t.token_id == self.tok.eot_id
            info = None
            if h.req.logprobs and not eot and t.logprob is not None:
                top = t.top_logprobs if h.req.top_logprobs else None
                info = TokenInfo(t.token_id, t.logprob, top)
            row.on_token(t.token_id, None if eot else self.tok.token_bytes(t.token_id), eot, info)

    def _retire(self) -> None:
        """Drop finished and abandoned rows from the decoder (a disconnected client frees its slot here)."""
        gone = {k for k, row in self._live.items() if row.done or row.handle.cancelled.is_set()}
        if gone:
            self.decoder.remove(gone)
            for k in gone:
                del self._live[k]
        self.active_rows = len(self._live)
        self._gauge()

    def _flush(self) -> None:
        """Hand this step's deltas to the event loop(s): one wake-up per step, not one per token."""
        if not self._outbox:
            return
        by_loop: dict[int, tuple[asyncio.AbstractEventLoop, list]] = {}
        for h, d in self._outbox:
            by_loop.setdefault(id(h.loop), (h.loop, []))[1].append((h, d))
        self._outbox.clear()
        for loop, items in by_loop.values():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed: nobody is listening any more
                for h, _ in items:
                    h.cancelled.set()

    def _fail_all(self, err: Exception) -> None:
        self._flush()
        handles = {id(r.handle): r.handle for r in self._live.values() if not r.done}
        for row in self._live.values():
            row.done = True
        try:
            self.decoder.remove(set(self._live))
        except Exception:
            log.exception("could not reset the decoder")
        self._live.clear()
        self.active_rows = 0
        self._gauge()
        # clients hear of the failure only once its rows are gone, so what they see next is a clean worker
        for h in handles.values():
            h._put(err)


