"""Helpers for the server tests: tiny engines, slowed-down and scripted decoders, a live server on loopback."""

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
from tinygpt4.serve.decoder import Decoder, Token


def make_engine(tok, vision: bool = False, seed: int = 0) -> Engine:
    return Engine(build_model(tiny_model_config(tok.vocab_size, vision=vision), seed=seed), tok)


class SlowDecoder(Decoder):
    """The real decoder, slowed down by `delay` seconds per step, optionally held before it admits anything
    (so tests can fill the queue), and counting the tokens each row got before it left."""

    def __init__(self, engine: Engine, delay: float = 0.01):
        super().__init__(engine)
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()
        self.tokens_at_exit: dict[int, int] = {}

    def add(self, specs):
        self.running.set()
        self.gate.wait(30)
        return super().add(specs)

    def step(self):
        time.sleep(self.delay)
        return super().step()

    def remove(self, keys):
        for s, m in zip(self.slots, self.made):
            if s is not None and s.key in keys:
                self.tokens_at_exit[s.key] = m
        super().remove(keys)


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


class ScriptedDecoder(Decoder):
    """Decoder stand-in that 'generates' a fixed text for every row (then <|eot|>), for testing what the server
    does with tokens: stop strings across token boundaries, output moderation, per-row limits."""

    def __init__(self, tok, script: str, max_len: int = 512, vision: bool = False):
        from tinygpt4.config import ModelConfig, VisionConfig

        self.tok = tok
        self.seq = tok.encode(script) + [tok.eot_id]
        self.max_len = max_len
        cfg = ModelConfig(vocab_size=tok.vocab_size, vision=VisionConfig(image_size=32) if vision else None)
        self.model = type("Model", (), {"config": cfg})()
        self.pos: dict[int, int] = {}

    @property
    def rows(self) -> int:
        return len(self.pos)

    def make_generator(self, seed):
        return None

    def _next(self, key):
        t = self.seq[min(self.pos[key], len(self.seq) - 1)]
        self.pos[key] += 1
        return Token(key, t, -0.5, None)

    def add(self, specs):
        for s in specs:
            self.pos[s.key] = 0
        return [self._next(s.key) for s in specs]

    def step(self):
        return [self._next(k) for k in list(self.pos)]

    def remove(self, keys):
        for k in keys:
            self.pos.pop(k, None)
