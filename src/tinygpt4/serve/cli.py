"""`tinygpt4 serve MODEL_DIR`: the OpenAI-compatible API and the web chat page on one port."""

from __future__ import annotations

import logging
import os

import torch
import uvicorn

from tinygpt4.checkpoint import chat_model_dir
from tinygpt4.errors import UserError
from tinygpt4.runtime import resolve_device


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible API with a web chat page",
                       description="Serve MODEL_DIR: POST /v1/chat/completions (text and images, streaming), "
                                   "GET /v1/models, /health, /metrics, and a chat page at /.")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /v1 and /metrics (default: $TINYGPT4_API_KEY)")
    p.add_argument("--moderation", choices=["off", "flag", "block"], default="flag",
                   help="policy checks on inputs and outputs: record only (flag) or also stop the answer (block)")
    p.add_argument("--audit-log", default=None, metavar="FILE",
                   help="moderation audit log, JSONL (default: serve_audit.jsonl in the current folder)")
    p.add_argument("--grader", default="auto", metavar="SPEC",
                   help="the rubric grader that also reads each answer: a trained grader folder, regex, judge:URL, "
                        "none; auto: the run's grader/ folder beside the checkpoint, if there is one")
    p.add_argument("--model-name", default=None, help="the id reported by /v1/models (default: folder name)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for generation (default: half the cores, leaving the rest to HTTP; "
                        "oversubscribed cores make PyTorch's threads wait on each other)")
    p.add_argument("--max-batch", type=int, default=32, help="most rows generated together")
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests before answering 429")
    p.add_argument("--max-images", type=int, default=8, help="images per request")
    p.add_argument("--max-n", type=int, default=8)
    p.add_argument("--default-max-tokens", type=int, default=256)
    p.add_argument("--max-body-mb", type=float, default=16.0)
    p.add_argument("--drain-seconds", type=float, default=30.0,
                   help="on SIGTERM, stop accepting and let running requests finish for this long")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser requests from this origin (repeatable; default: none)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    # Imported here, not at the top: FastAPI is slow to import and would delay every command's start
    # (`tinygpt4 --help` included) for the one command that serves; measured in docs/eval-notes.md.
    from tinygpt4.serve.api import ServeSettings, create_app

    model_dir = chat_model_dir(args.model_dir)  # a run folder serves its RL model when it has one
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} is not a checkpoint folder (no config.json)")
    for name in ("max_batch", "max_queue", "max_n", "default_max_tokens"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_images < 0 or args.max_body_mb <= 0 or args.drain_seconds < 0:
        raise UserError("--max-images, --max-body-mb and --drain-seconds must not be negative")
    if not 0 <= args.port <= 65535:
        raise UserError("--port must be between 0 and 65535")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) // 2))
    settings = ServeSettings(
        model_name=args.model_name,
        api_key=args.api_key or os.environ.get("TINYGPT4_API_KEY") or None,
        moderation=args.moderation,
        grader=_grader_spec(args.grader, model_dir) if args.moderation != "off" else None,
        audit_log=None if args.moderation == "off" else (args.audit_log or "serve_audit.jsonl"),
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        max_images=args.max_images,
        max_n=args.max_n,
        default_max_tokens=args.default_max_tokens,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        drain_seconds=args.drain_seconds,
        cors_origins=list(args.cors_origin),
        device=str(resolve_device(args.device)),
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(model_dir, settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=args.drain_seconds, server_header=False)
    _DrainingServer(config, app.state.tg).run()
    return 0


def _grader_spec(spec: str, model_dir) -> str | None:
    if spec == "none":
        return None
    if spec != "auto":
        return spec
    run_grader = model_dir.resolve().parent / "grader"
    return str(run_grader) if (run_grader / "config.json").is_file() else None


class _DrainingServer(uvicorn.Server):
    """A uvicorn.Server that marks the app as draining when SIGTERM/SIGINT arrives: /health turns 503 and new
    requests are refused, while uvicorn lets running ones finish for up to `timeout_graceful_shutdown`."""

    def __init__(self, config: uvicorn.Config, app_state):
        super().__init__(config)
        self.app_state = app_state

    def handle_exit(self, sig, frame):
        self.app_state.status = "draining"
        super().handle_exit(sig, frame)
