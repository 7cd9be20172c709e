"""The OpenAI-compatible HTTP API: /v1/chat/completions, /v1/models, /health, /metrics and the web chat at /.

Request handling is split so that nothing slow runs on the event loop: parsing and validation are cheap;
image decoding and chat rendering run in a thread pool; generation runs in the batcher's worker thread.
Every error a client can see is an OpenAI-style body {"error": {"message", "type", "param", "code"}}; the
text of unexpected exceptions is logged here and never sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tinygpt4.chat import render_chat
from tinygpt4.checkpoint import load_model
from tinygpt4.data.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, load_image_ref
from tinygpt4.engine import Engine
from tinygpt4.errors import UserError
from tinygpt4.safety.graders import load_grader
from tinygpt4.safety.moderation import GradedModerator, PolicyMatcher
from tinygpt4.serve.batcher import Batcher, Delta, GenerationError, GenRequest, Handle, QueueFull
from tinygpt4.serve.decoder import Decoder
from tinygpt4.serve.metrics import Metrics
from tinygpt4.serve.schemas import ChatCompletionRequest, unsupported_field

log = logging.getLogger("tinygpt4.serve")

STATIC_DIR = Path(__file__).parent / "static"
ENDPOINTS = ("/v1/chat/completions", "/v1/models", "/health", "/metrics", "/")
PAGE_HEADERS = {
    # The chat page needs nothing from elsewhere; model output rendered into it can never load or run code.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class ServeSettings:
    model_name: str | None = None  # defaults to the checkpoint folder's name
    api_key: str | None = None
    moderation: str = "flag"  # off | flag | block
    audit_log: str | None = None
    grader: str | None = None  # the rubric grader that also reads outputs: a trained grader folder, "regex", judge:URL
    max_body_bytes: int = 16 * 1024 * 1024
    max_messages: int = 256
    max_images: int = 8
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_n: int = 8
    max_stop_chars: int = 128
    default_max_tokens: int = 256
    max_queue: int = 64
    max_batch: int = 32
    batch_wait_ms: float = 5.0
    drain_seconds: float = 30.0
    retry_after_s: int = 1
    cors_origins: list[str] = field(default_factory=list)
    device: str = "cpu"


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


class _BodyTooLarge(Exception):
    pass


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status, headers=e.headers)


class _State:
    """What the handlers share; filled in when the model has loaded."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.metrics = Metrics()
        self.decoder: Decoder | None = None
        self.batcher: Batcher | None = None
        self.moderator: PolicyMatcher | GradedModerator | None = None
        self.model_name = settings.model_name or "tinygpt4"
        self.fingerprint: str | None = None
        self.created = int(time.time())
        self.status = "loading"  # loading | ok | error | draining
        self.image_tokens = 0

    def install(self, engine, fingerprint: str | None = None) -> None:
        s = self.settings
        self.moderator = (GradedModerator(load_grader(s.grader), s.moderation, s.audit_log) if s.grader
                          else PolicyMatcher(s.moderation, s.audit_log))
        self.decoder = engine if isinstance(engine, Decoder) else Decoder(engine)
        vision = getattr(self.decoder.model.config, "vision", None)
        self.image_tokens = vision.tokens_per_image if vision is not None else 0
        self.fingerprint = fingerprint
        self.batcher = Batcher(self.decoder, max_batch=s.max_batch, max_queue=s.max_queue,
                               batch_wait_s=s.batch_wait_ms / 1000, metrics=self.metrics)
        self.batcher.start()
        self.status = "ok"


def _load_engine(model_dir: Path, device: str):
    model, tok = load_model(model_dir, device=device)
    cfg = (model_dir / "config.json").read_bytes()
    return Engine(model, tok), "fp_" + hashlib.sha256(cfg).hexdigest()[:10]


def create_app(source, settings: ServeSettings | None = None) -> FastAPI:
    """`source` is a checkpoint folder (loaded in the background; /health answers 503 until it is ready), an
    already-built `Engine`, or a `Decoder` (tests pass decoders that script or slow down generation)."""
    settings = settings or ServeSettings()
    st = _State(settings)
    if isinstance(source, str | Path):
        model_dir = Path(source)
        st.model_name = settings.model_name or model_dir.resolve().name
    else:
        model_dir = None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if model_dir is None:
            st.install(source)
        else:
            def load():
                try:
                    engine, fp = _load_engine(model_dir, settings.device)
                    st.install(engine, fp)
                    log.info("model %s loaded", st.model_name)
                except Exception:
                    log.exception("could not load the model from %s", model_dir)
                    st.status = "error"

            threading.Thread(target=load, name="tinygpt4-load", daemon=True).start()
        yield
        st.status = "draining"
        if st.batcher is not None:
            await run_in_threadpool(st.batcher.stop, 2.0)

    app = FastAPI(title="tinygpt4", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tg = st
    _install_handlers(app)
    _add_routes(app, st)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(_Guard, state=st)
    return app


# ---- middleware and error handlers ----------------------------------------------------------------------

class _Guard:
    """Pure ASGI: refuses bodies over the limit (by Content-Length, and by counting what actually arrives)
    and counts responses by endpoint and status for /metrics."""

    def __init__(self, app, state: _State):
        self.app = app
        self.st = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else ("/static" if path.startswith("/static/") else "other")
        limit = self.st.settings.max_body_bytes
        status = {"code": 500}

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                resp = JSONResponse(error_body(f"request body exceeds the limit of {limit:,} bytes",
                                               code="request_too_large"), status_code=413)
                await resp(scope, receive, send_counted)
                self.st.metrics.count_request(endpoint, 413)
                return
        seen = 0

        async def receive_limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, receive_limited, send_counted)
        finally:
            self.st.metrics.count_request(endpoint, status["code"])


def _param_from_loc(loc) -> str | None:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part not in ("str", "int", "float", "bool", "list"):
            out += ("." if out else "") + part
    return out or None


def _validation_message(errors: list[dict]) -> tuple[str, str | None]:
    # Unions report one error per alternative; the deepest one is the most specific.
    err = max(errors, key=lambda e: len(e.get("loc", ())))
    param = _param_from_loc(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return (f"{param}: {msg}" if param else msg), param


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error_response(e)

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request: Request, e: _BodyTooLarge):
        limit = request.app.state.tg.settings.max_body_bytes
        return JSONResponse(error_body(f"request body exceeds the limit of {limit:,} bytes",
                                       code="request_too_large"), status_code=413)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        msg, param = _validation_message(list(e.errors()))
        return JSONResponse(error_body(msg, param=param, code="invalid_value"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        msg = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return JSONResponse(error_body(msg.get(e.status_code, "request failed"), code=code),
                            status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=e)
        return JSONResponse(error_body("internal server error", "server_error"), status_code=500)


# ---- routes ---------------------------------------------------------------------------------------------

def _check_key(request: Request, st: _State) -> None:
    key = st.settings.api_key
    if not key:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    ok = hmac.compare_digest(token.strip().encode("utf-8", "replace"), key.encode("utf-8")) \
        and scheme.lower() == "bearer"
    if not ok:
        raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")


def _require_ready(st: _State) -> None:
    if st.status == "ok":
        return
    detail = {"loading": "the model is still loading", "draining": "the server is shutting down",
              "error": "the model failed to load"}[st.status]
    raise ApiError(503, detail, type="server_error", code=f"model_{st.status}", headers={"Retry-After": "5"})


def _add_routes(app: FastAPI, st: _State) -> None:
    @app.get("/health")
    async def health():
        code = 200 if st.status == "ok" else 503
        return JSONResponse({"status": st.status, "model": st.model_name}, status_code=code)

    @app.get("/metrics")
    async def metrics(request: Request):
        _check_key(request, st)
        if st.batcher is not None:
            st.metrics.set_queue(st.batcher.queue_depth, st.batcher.active_rows)
        return PlainTextResponse(st.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(request: Request):
        _check_key(request, st)
        return {"object": "list", "data": [_model_card(st)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        _check_key(request, st)
        if model_id != st.model_name:
            raise ApiError(404, f"the model '{model_id}' does not exist", param="model", code="model_not_found")
        return _model_card(st)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        t0 = time.perf_counter()
        _check_key(request, st)
        _require_ready(st)
        body = _parse_request(await request.body())
        prep = await run_in_threadpool(_prepare, st, body)
        rid = "chatcmpl-" + secrets.token_hex(12)
        messages = [m.to_chat() for m in body.messages]
        decision = st.moderator.check_input(messages, rid)
        if decision.categories:
            st.metrics.count_moderation("input", decision.action)
        if decision.blocked:
            return _blocked_response(st, body, rid, len(prep.ids))
        watch = _OutputWatch(st, rid, messages) if st.moderator.mode == "block" else None
        req = GenRequest(prompt=prep.ids, images=prep.images, n=body.n, max_tokens=prep.max_tokens,
                         temperature=body.temperature, top_p=body.top_p, seed=body.seed, stop=prep.stop,
                         top_logprobs=body.top_logprobs or 0, logprobs=body.logprobs,
                         blocks_output=watch.blocks if watch else None, request_id=rid)
        try:
            handle = st.batcher.submit(req)
        except QueueFull:
            raise ApiError(429, "too many requests are waiting; retry shortly", type="rate_limit_error",
                           code="rate_limit_exceeded", headers={"Retry-After": str(st.settings.retry_after_s)}) from None
        if body.stream:
            return StreamingResponse(_stream(st, body, handle, rid, t0), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _complete(st, body, handle, rid, t0, request)

    @app.get("/")
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _model_card(st: _State) -> dict:
    return {"id": st.model_name, "object": "model", "created": st.created, "owned_by": "tinygpt4"}


def _parse_request(raw: bytes) -> ChatCompletionRequest:
    def no_constants(name):
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(raw, parse_constant=no_constants)
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid UTF-8", code="invalid_json") from None
    except (ValueError, RecursionError) as e:
        msg = str(e).splitlines()[0][:200] if isinstance(e, ValueError) else "nested too deeply"
        raise ApiError(400, f"request body is not valid JSON ({msg})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    name = unsupported_field(data)
    if name is not None:
        raise ApiError(400, f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as e:
        msg, param = _validation_message(e.errors(include_url=False))
        raise ApiError(400, msg, param=param, code="invalid_value") from None


@dataclass
class _Prepared:
    ids: list[int]
    images: list
    max_tokens: int
    stop: list[str]


def _prepare(st: _State, body: ChatCompletionRequest) -> _Prepared:
    """Limits, image decoding and chat rendering (runs in a worker thread: decoding can take a while)."""
    s = st.settings
    if len(body.messages) > s.max_messages:
        raise ApiError(400, f"too many messages ({len(body.messages)}; the limit is {s.max_messages})",
                       param="messages", code="too_many_messages")
    if body.n > s.max_n:
        raise ApiError(400, f"n must be at most {s.max_n}", param="n", code="invalid_value")
    stop = [x for x in body.stop_list if x]
    if any(len(x) > s.max_stop_chars for x in stop):
        raise ApiError(400, f"stop sequences may be at most {s.max_stop_chars} characters", param="stop",
                       code="invalid_value")
    messages = [m.to_chat() for m in body.messages]
    where = [(i, j) for i, m in enumerate(messages) if isinstance(m["content"], list)
             for j, p in enumerate(m["content"]) if p["type"] == "image_url"]
    if where and not st.image_tokens:
        raise ApiError(400, "this model does not accept images", param="messages", code="images_not_supported")
    if len(where) > s.max_images:
        raise ApiError(400, f"too many images ({len(where)}; the limit is {s.max_images} per request)",
                       param="messages", code="too_many_images")
    decoded = []
    for k, (i, j) in enumerate(where):
        param = f"messages[{i}].content[{j}].image_url"
        part = messages[i]["content"][j]
        try:
            decoded.append(load_image_ref(part["image_url"]["url"], None, max_bytes=s.max_image_bytes,
                                          max_pixels=s.max_image_pixels))
        except UserError as e:
            raise ApiError(400, str(e), param=param, code="invalid_image") from None
        part["image_url"] = {"url": f"img:{k}"}  # the renderer only sees an index into `decoded`
    try:
        rc = render_chat(messages, st.decoder.tok, image_tokens=st.image_tokens, add_generation_prompt=True,
                         load_images=False)
    except UserError as e:
        raise ApiError(400, str(e), param="messages", code="invalid_value") from None
    images = [decoded[int(ref[4:])] for ref in rc.images]
    context = st.decoder.max_len
    n_prompt = len(rc.ids)
    asked = body.requested_max_tokens
    param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    if n_prompt >= context or (asked is not None and n_prompt + asked > context):
        raise ApiError(400, f"this model's maximum context length is {context} tokens; the messages use "
                            f"{n_prompt} and {asked or 1} were requested for the completion",
                       param=param if asked and n_prompt < context else "messages", code="context_length_exceeded")
    max_tokens = asked if asked is not None else min(s.default_max_tokens, context - n_prompt)
    return _Prepared(rc.ids, images, max_tokens, stop)


class _OutputWatch:
    """Block-mode output moderation, called by the worker on each row's growing text."""

    WINDOW = 2000  # characters: far longer than any policy pattern can span

    def __init__(self, st: _State, rid: str, messages: list[dict]):
        self.st, self.rid, self.messages = st, rid, messages

    def blocks(self, text: str) -> bool:
        d = self.st.moderator.check_output(text[-self.WINDOW:], self.rid, log=False, conversation=self.messages)
        if d.blocked:
            self.st.moderator.log("output", d, self.rid)
            self.st.metrics.count_moderation("output", "block")
        return d.blocked


def _check_final_output(st: _State, rid: str, texts: list[str], messages: list[dict]) -> None:
    """Flag mode (and block mode's record of sensitive categories): one logged decision per choice."""
    if st.moderator.mode == "off":
        return
    for text in texts:
        d = st.moderator.check_output(text, rid, conversation=messages)
        if d.categories and not d.blocked:
            st.metrics.count_moderation("output", d.action)


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _logprobs_content(tok, infos) -> list[dict]:
    def entry(tid: int, lp: float) -> dict:
        b = tok.token_bytes(tid)
        return {"token": b.decode("utf-8", errors="replace"), "logprob": lp, "bytes": list(b)}

    out = []
    for t in infos:
        e = entry(t.token_id, t.logprob)
        e["top_logprobs"] = [entry(i, lp) for i, lp in (t.top or {}).items()]
        out.append(e)
    return out


def _blocked_response(st: _State, body: ChatCompletionRequest, rid: str, n_prompt: int):
    created = int(time.time())
    if not body.stream:
        choices = [{"index": i, "message": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None, "finish_reason": "content_filter"} for i in range(body.n)]
        return {"id": rid, "object": "chat.completion", "created": created, "model": st.model_name,
                "system_fingerprint": st.fingerprint, "choices": choices, "usage": _usage(n_prompt, 0)}
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events():
        for i in range(body.n):
            yield _sse(_chunk(st, rid, created, i, {"role": "assistant", "content": ""}, None, None, include_usage))
            yield _sse(_chunk(st, rid, created, i, {}, "content_filter", None, include_usage))
        if include_usage:
            yield _sse(_usage_chunk(st, rid, created, _usage(n_prompt, 0)))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# Characters JSON leaves raw but str.splitlines() (and so many SSE clients) treats as line breaks.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False).translate(_LINE_BREAKS)}\n\n"


def _chunk(st: _State, rid: str, created: int, index: int, delta: dict, finish: str | None, logprobs,
           include_usage: bool) -> dict:
    c = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": st.model_name,
         "system_fingerprint": st.fingerprint,
         "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
    if include_usage:
        c["usage"] = None
    return c


def _usage_chunk(st: _State, rid: str, created: int, usage: dict) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": st.model_name,
            "system_fingerprint": st.fingerprint, "choices": [], "usage": usage}


def _finish_metrics(st: _State, handle: Handle, t0: float, n_prompt: int, completion: int) -> None:
    m = st.metrics
    m.add_tokens(n_prompt, completion)
    if handle.t_first is not None:
        m.observe_ttft(handle.t_first - t0)
    m.observe_latency(time.perf_counter() - t0)


def _coalesce(group: list) -> list:
    """Merge consecutive deltas of the same choice (a client that reads slower than tokens arrive gets
    one chunk with several tokens rather than a backlog of one-token chunks)."""
    out = []
    for d in group:
        prev = out[-1] if out else None
        if prev is not None and prev.index == d.index and prev.finish_reason is None:
            out[-1] = Delta(d.index, prev.text + d.text, d.finish_reason, prev.tokens + d.tokens,
                            d.completion_tokens)
        else:
            out.append(d)
    return out


async def _stream(st: _State, body: ChatCompletionRequest, handle: Handle, rid: str, t0: float):
    created = int(time.time())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    n_prompt = len(handle.req.prompt)
    completion, finished = 0, False
    texts = [""] * body.n
    try:
        for i in range(body.n):
            yield _sse(_chunk(st, rid, created, i, {"role": "assistant", "content": ""}, None, None, include_usage))
        async for group in handle.batches():
            out = []  # one write for everything that arrived together
            for d in _coalesce(group):
                lp = ({"content": _logprobs_content(st.decoder.tok, d.tokens), "refusal": None}
                      if body.logprobs else None)
                if d.text or (lp and lp["content"]):
                    texts[d.index] += d.text
                    out.append(_sse(_chunk(st, rid, created, d.index, {"content": d.text}, None, lp,
                                           include_usage)))
                if d.finish_reason is not None:
                    completion += d.completion_tokens
                    out.append(_sse(_chunk(st, rid, created, d.index, {}, d.finish_reason, None, include_usage)))
            if out:
                yield "".join(out)
        finished = True
        if include_usage:
            yield _sse(_usage_chunk(st, rid, created, _usage(n_prompt, completion)))
        yield "data: [DONE]\n\n"
        _finish_metrics(st, handle, t0, n_prompt, completion)
        _check_final_output(st, rid, texts, [m.to_chat() for m in body.messages])
    except GenerationError:
        finished = True
        yield _sse(error_body("generation failed", "server_error"))
        yield "data: [DONE]\n\n"
    finally:
        if not finished:
            handle.cancel()  # the client went away mid-stream: free its rows


async def _complete(st: _State, body: ChatCompletionRequest, handle: Handle, rid: str, t0: float,
                    request: Request):
    n_prompt = len(handle.req.prompt)
    texts, finish, tokens = [""] * body.n, [None] * body.n, [[] for _ in range(body.n)]
    completion = 0

    async def collect():
        nonlocal completion
        async for d in handle.deltas():
            texts[d.index] += d.text
            tokens[d.index] += d.tokens
            if d.finish_reason is not None:
                finish[d.index] = d.finish_reason
                completion += d.completion_tokens

    async def disconnected():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    work = asyncio.create_task(collect())
    watch = asyncio.create_task(disconnected())
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():  # the client went away (or the server is stopping): free the rows
            work.cancel()
            handle.cancel()
    if work not in done:
        return Response(status_code=499)  # nobody is left to read this
    try:
        work.result()
    except GenerationError:
        raise ApiError(500, "generation failed", type="server_error") from None
    _finish_metrics(st, handle, t0, n_prompt, completion)
    _check_final_output(st, rid, texts, [m.to_chat() for m in body.messages])
    choices = []
    for i in range(body.n):
        lp = {"content": _logprobs_content(st.decoder.tok, tokens[i]), "refusal": None} if body.logprobs else None
        choices.append({"index": i, "message": {"role": "assistant", "content": texts[i], "refusal": None},
                        "logprobs": lp, "finish_reason": finish[i]})
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": st.model_name,
            "system_fingerprint": st.fingerprint, "choices": choices, "usage": _usage(n_prompt, completion)}
