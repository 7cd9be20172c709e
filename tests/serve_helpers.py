"""Helpers for the server tests: tiny engines, a slowed-down engine, a live uvicorn server on loopback."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

from conftest import tiny_model_config
from PIL import Image

from tinygpt4.checkpoint import build_model
from tinygpt4.engine import Engine


def make_engine(tok, vision: bool = False, seed: int = 0) -> Engine:
    return Engine(build_model(tiny_model_config(tok.vocab_size, vision=vision), seed=seed), tok)


class SlowEngine:
    """Wraps an Engine: sleeps `delay` seconds per generated token, counts tokens per batch row, and can be
    held before it starts (so tests can fill the queue)."""

    def __init__(self, engine: Engine, delay: float = 0.01):
        self.engine = engine
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.row_tokens: list[list[int]] = []  # per batch: tokens yielded per row
        self.running = threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def stream_batch(self, prompts, **kw):
        self.running.set()
        self.gate.wait(30)
        counts = [0] * len(prompts)
        self.row_tokens.append(counts)
        for ev in self.engine.stream_batch(prompts, **kw):
            counts[ev.row] += 1
            time.sleep(self.delay)
            yield ev


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 with an OS-chosen port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        import httpx

        self.thread.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def png_bytes(size: int = 32, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (the decompression-bomb shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * side
    idat = zlib.compress(row * 64, 9)  # a few rows; the rest would be "decompressed" into memory
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class ScriptedEngine:
    """Engine stand-in that 'generates' a fixed text for every row (then <|eot|>), for testing what the server
    does with tokens: stop strings across token boundaries, output moderation, per-row limits."""

    def __init__(self, tok, script: str, max_len: int = 512):
        from tinygpt4.config import ModelConfig

        self.tok = tok
        self.ids = tok.encode(script)
        self.max_len = max_len
        self.model = type("M", (), {"config": ModelConfig(vocab_size=tok.vocab_size)})()
        self.stopped: list[int] = []  # rows cancelled through should_stop

    def stream_batch(self, prompts, *, max_new_tokens=64, should_stop=None, **kw):
        from tinygpt4.engine import StepEvent

        live = list(range(len(prompts)))
        seq = self.ids + [self.tok.eot_id]
        for step in range(max_new_tokens):
            nxt = []
            for r in live:
                t = seq[min(step, len(seq) - 1)]
                if t == self.tok.eot_id:
                    yield StepEvent(r, "", t, "stop", -0.5, None)
                    continue
                finish = "length" if step == max_new_tokens - 1 else None
                if finish is None and should_stop is not None and should_stop(r):
                    finish = "cancelled"
                    self.stopped.append(r)
                yield StepEvent(r, "", t, finish, -0.5, None)
                if finish is None:
                    nxt.append(r)
            live = nxt
            if not live:
                return
