"""Muon for the transformer's hidden matrices, AdamW for everything else, as one optimizer.

Muon (Jordan et al., 2024) steps each weight matrix along the orthogonalised momentum of its gradient
(a few Newton-Schulz iterations), so every direction of the matrix moves at the same rate. PyTorch's own
`torch.optim.Muon` runs those iterations in bf16, which is emulated and far slower than fp32 on CPUs without
bf16 units (docs/training-notes.md); here they run in the dtype training picks, and matrices of one shape are
orthogonalised together as one batched matmul.
"""

from __future__ import annotations

import torch
from torch.optim.adamw import adamw

# Quintic Newton-Schulz coefficients from the reference implementation: five iterations take every singular
# value of a unit-norm matrix into roughly [0.7, 1.2], which is all the update needs.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Approximately U·Vᵀ for a batch of matrices [..., m, n] with SVD U·S·Vᵀ."""
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return (x.mT if tall else x).to(g.dtype)


def is_hidden_matrix(name: str, p: torch.nn.Parameter) -> bool:
    """A 2-D weight inside a transformer block. Embeddings, the LM head, norms and a vision tower's stem and
    projector keep AdamW, as in the reference recipe."""
    return p.dim() == 2 and ".layers." in f".{name}" and "embed" not in name


class MuonAdamW(torch.optim.Optimizer):
    """Groups with `muon=True` take Muon steps, the others AdamW steps (the fused kernel where it exists).

    A Muon step's update has RMS 0.2 whatever the matrix's shape (Moonshot's scaling), the typical RMS of an
    AdamW update, so both kinds of group share one learning rate and schedule."""

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 momentum: float = 0.95, ns_steps: int = 5, ns_dtype: torch.dtype = torch.float32,
                 fused: bool = False):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0, "momentum": momentum,
                    "ns_steps": ns_steps, "muon": False}
        super().__init__(groups, defaults)
        self.ns_dtype, self.fused = ns_dtype, fused

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch leaves a loaded "step" on the CPU unless the group names a fused kernel; ours is named on
        # self, and the fused kernel wants each step counter on its parameter's device (a resumed GPU run failed)
        for p, st in self.state.items():
            if "step" in st:
                st["step"] = st["step"].to(device=p.device, dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon if group["muon"] else self._adamw)(group, params)

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        mom, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
        grads = [p.grad for p in params]
        bufs = []
        for p in params:
            st = self.state[p]
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = torch.zeros_like(p)
            bufs.append(st["momentum_buffer"])
        torch._foreach_lerp_(bufs, grads, 1 - mom)
        updates = torch._foreach_lerp(grads, bufs, mom)  # Nesterov: look one momentum step ahead
        by_shape: dict[torch.Size, list[int]] = {}
        for i, p in enumerate(params):
            by_shape.setdefault(p.shape, []).append(i)
        for shape, idx in by_shape.items():
            ortho = orthogonalize(torch.stack([updates[i] for i in idx]), group["ns_steps"], self.ns_dtype)
            scale = 0.2 * max(shape) ** 0.5
            for j, i in enumerate(idx):
                if wd:
                    params[i].mul_(1 - lr * wd)
                params[i].add_(ortho[j], alpha=-lr * scale)

    def _adamw(self, group: dict, params: list[torch.Tensor]) -> None:
        exp_avgs, exp_avg_sqs, steps = [], [], []
        for p in params:
            st = self.state[p]
            if "step" not in st:
                st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            exp_avgs.append(st["exp_avg"])
            exp_avg_sqs.append(st["exp_avg_sq"])
            steps.append(st["step"])
        beta1, beta2 = group["betas"]
        adamw(
            params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps, fused=self.fused or None,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=False)
