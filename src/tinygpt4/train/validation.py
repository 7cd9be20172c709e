"""Validation loss on a fixed list of held-out batches: the `eval_fn` the training stages hand to `train`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def make_val_fn(batches: list[dict], *, token_weighted: bool,
                bytes_per_token: float | None = None) -> Callable[[torch.nn.Module], dict]:
    """`evaluate(model) -> {"val_loss": ...}` over `batches` (keyword batches for `model(**batch)`, which
    returns the mean loss over the batch's scored targets, those >= 0).

    token_weighted=True: the loss per scored token over all the batches (each batch's mean weighted by its
    scored tokens; a batch with none is left out). Pretraining reports this, since bits per byte
    (`bytes_per_token` given: the split's bytes per scored token) needs the loss per token.
    token_weighted=False: the mean of the batches' own means. SFT reports this: its batches hold different
    numbers of trained (assistant) tokens, so the two differ, and SFT's logged losses have always been this.
    """

    def evaluate(model) -> dict:
        dev = next(model.parameters()).device
        total, count = 0.0, 0
        for b in batches:
            n = int((b["targets"] >= 0).sum()) if token_weighted else 1
            if n:
                kw = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in b.items()}
                total += float(model(**kw)) * n
                count += n
        loss = total / max(count, 1)
        res = {"val_loss": round(loss, 5)}
        if bytes_per_token is not None:
            res["val_bpb"] = round(loss / math.log(2) / bytes_per_token, 5)
        return res

    return evaluate
