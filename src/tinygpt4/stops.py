"""Stop strings over streamed text: what may be shown now, and where the reply ends.

Text that could be the start of a stop string is held back until the next piece settles it, so a stop
string never reaches the reader even when it spans several tokens. The engine and the server share this.
"""

from __future__ import annotations


def earliest_stop(text: str, stops: list[str]) -> int | None:
    """Index where the earliest stop string in text begins, or None."""
    best = None
    for s in stops:
        i = text.find(s)
        if i != -1 and (best is None or i < best):
            best = i
    return best


def stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of some stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class StopText:
    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""  # held back: it may be the start of a stop string

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show now, whether a stop string was reached); after a stop nothing more is shown."""
        buf = self.pending + text
        cut = earliest_stop(buf, self.stops)
        if cut is not None:
            self.pending = ""
            return buf[:cut], True
        hold = stop_prefix_len(buf, self.stops)
        self.pending = buf[len(buf) - hold:] if hold else ""
        return (buf[:len(buf) - hold] if hold else buf), False

    def flush(self) -> str:
        """The held-back text, at the end of a reply that no stop string ended."""
        out, self.pending = self.pending, ""
        return out
