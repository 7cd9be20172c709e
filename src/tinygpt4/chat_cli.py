"""`tinygpt4 chat MODEL_DIR`: a multi-turn conversation in the terminal, streamed as it is generated.

Commands typed on their own line: /image PATH (attach an image to the next message), /system TEXT,
/temperature T, /reset, /help, /quit. A bad image is reported on one line and the conversation goes on.
Images are checked when attached (same limits as every other entry point) and kept in the conversation
as data URLs, so the one chat renderer sees exactly what a server request would carry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tinygpt4.chat import render_chat
from tinygpt4.data.images import image_to_data_url, read_image_file
from tinygpt4.engine import Engine
from tinygpt4.errors import UserError
from tinygpt4.interactive import load_for_generation

HELP = ("commands: /image PATH  attach an image to your next message | /system TEXT  set the system message | "
        "/temperature T | /reset  start over | /help | /quit")


@dataclass
class ChatSession:
    """The conversation state and one turn of generation; the REPL below is a thin loop around it."""

    model: object
    tok: object
    temperature: float = 0.0
    max_tokens: int = 128
    top_k: int | None = None
    seed: int | None = None
    system: str | None = None
    messages: list[dict] = field(default_factory=list)
    pending_images: list[str] = field(default_factory=list)  # data URLs for the next user message

    def __post_init__(self):
        self.engine = Engine(self.model, self.tok)
        vision = getattr(self.model.config, "vision", None)
        self.image_tokens = vision.tokens_per_image if vision is not None else 0
        self.context = int(self.model.config.seq_len)

    def attach_image(self, path: str) -> None:
        if not self.image_tokens:
            raise UserError("this model has no vision tower; it cannot take images")
        img = read_image_file(path)
        self.pending_images.append(image_to_data_url(img))

    def reset(self) -> None:
        self.messages.clear()
        self.pending_images.clear()

    def reply(self, text: str) -> Iterable[str]:
        """Add the user's message, stream the assistant's answer, and keep both in the history."""
        parts = [{"type": "image_url", "image_url": {"url": u}} for u in self.pending_images]
        user = {"role": "user", "content": [*parts, {"type": "text", "text": text}] if parts else text}
        convo = ([{"role": "system", "content": self.system}] if self.system else []) + self.messages + [user]
        budget = max(16, self.context - min(self.max_tokens, self.context // 2))
        r = render_chat(convo, self.tok, image_tokens=self.image_tokens, add_generation_prompt=True,
                        max_len=budget)
        self.pending_images = []
        self.dropped = r.dropped_turns
        max_new = max(1, min(self.max_tokens, self.engine.max_len - len(r.ids)))
        answer = []
        for piece in self.engine.stream(r.ids, max_new_tokens=max_new, temperature=self.temperature,
                                        top_k=self.top_k, seed=self.seed, images=[r.images] if r.images else None):
            answer.append(piece)
            yield piece
        self.messages += [user, {"role": "assistant", "content": "".join(answer).strip()}]


def handle_command(session: ChatSession, line: str, say: Callable[[str], None]) -> bool:
    """Run a /command; return False when the user asked to quit."""
    cmd, _, arg = line.partition(" ")
    arg = arg.strip()
    if cmd in ("/quit", "/exit"):
        return False
    if cmd == "/help":
        say(HELP)
    elif cmd == "/reset":
        session.reset()
        say("(conversation cleared)")
    elif cmd == "/system":
        session.system = arg or None
        say("(system message set)" if arg else "(system message cleared)")
    elif cmd == "/temperature":
        try:
            t = float(arg)
        except ValueError:
            raise UserError(f"/temperature needs a number, got {arg!r}") from None
        if not 0 <= t <= 5:
            raise UserError("/temperature must be between 0 and 5")
        session.temperature = t
        say(f"(temperature {t:g})")
    elif cmd == "/image":
        if not arg:
            raise UserError("/image needs a file path")
        session.attach_image(arg)
        say(f"(image attached to your next message: {arg})")
    else:
        raise UserError(f"unknown command {cmd} (/help lists them)")
    return True


def repl(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> None:
    def say(msg: str) -> None:
        write(msg + "\n")

    say("tinygpt4 chat. " + HELP)
    while True:
        try:
            line = read("you> ")
        except EOFError:
            write("\n")
            return
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not handle_command(session, line, say):
                    return
                continue
            write("assistant> ")
            for piece in session.reply(line):
                write(piece)
            write("\n")
            if session.dropped:
                say(f"(the {session.dropped} oldest turn(s) no longer fit the context and were left out)")
        except UserError as e:
            say(f"error: {e}")


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a checkpoint in the terminal",
                       description="Multi-turn chat with streaming output. " + HELP)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="attach an image to the first message (repeatable)")
    p.add_argument("--system", default=None, help="system message")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    model, tok = load_for_generation(args)
    session = ChatSession(model, tok, temperature=args.temperature, max_tokens=args.max_tokens, top_k=args.top_k,
                          seed=args.seed, system=args.system)
    for path in args.image:
        session.attach_image(path)  # a bad file given on the command line is an error before starting

    def write(s: str) -> None:
        sys.stdout.write(s)
        sys.stdout.flush()

    repl(session, input, write)
    return 0
