"""Decoder-only transformer: RoPE, RMSNorm, QK-norm, SwiGLU, grouped-query attention, no biases, SDPA.

Parameter names follow Hugging Face's Llama/Qwen3 layout (model.layers.N.self_attn.q_proj, ...), so exporting
is a renaming. RoPE uses the rotate-half convention of those models for the same reason.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tinygpt4.config import ModelConfig

# Where GPT.logits runs the output head: everywhere (None), "last", a bool mask [B, T], or (batch_idx, time_idx).
LogitsAt = str | torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


def rope_tables(head_dim: int, max_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(max_len, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, D]; cos/sin: [B, 1, T, D] (gathered at each row's positions)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class KVCache:
    """Preallocated keys/values for all layers. Rows share one write position; left padding is masked out
    through `valid`, so prompts of different lengths batch together."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device, dtype):
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.pos = 0
        self.max_len = max_len

    def select(self, rows: torch.Tensor) -> None:
        """Keep only some rows (finished sequences drop out of the batch)."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]
        self.valid = self.valid[rows]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.n_embd, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)

    def forward(self, x, cos, sin, attn_mask, cache: KVCache | None, layer: int):
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_head, self.hd)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv, self.hd)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            p = cache.pos
            cache.k[layer, :, :, p:p + T] = k
            cache.v[layer, :, :, p:p + T] = v
            k, v = cache.k[layer, :, :, :p + T], cache.v[layer, :, :, :p + T]
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_head)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=self.n_kv != self.n_head)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, attn_mask, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # RoPE tables cover generation beyond the training length; not parameters, not saved.
        self.rope_len = cfg.seq_len * 4
        cos, sin = rope_tables(cfg.head_dim, self.rope_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    # -- init -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """Normal(0, 0.02) everywhere, residual output projections scaled down by depth (GPT-2), norms at 1."""
        gen = torch.Generator(device="cpu")
        if seed is not None:
            gen.manual_seed(seed)
        std = 0.02
        resid_std = std / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.fill_(1.0)
            else:
                s = resid_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                p.copy_(torch.randn(p.shape, generator=gen) * s)
        cos, sin = rope_tables(self.config.head_dim, self.rope_len, self.config.rope_theta, self.rope_cos.device)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)

    @classmethod
    def build(cls, cfg: ModelConfig, device="cpu", seed: int | None = 0, init: bool = True) -> GPT:
        """Construct on the meta device (no wasted allocation), then materialise on `device`."""
        with torch.device("meta"):
            model = cls(cfg)
        model = model.to_empty(device=device)
        if init:
            model.init_weights(seed)
        else:
            cos, sin = rope_tables(cfg.head_dim, model.rope_len, cfg.rope_theta, device)
            model.rope_cos.copy_(cos)
            model.rope_sin.copy_(sin)
        return model

    # -- accounting -------------------------------------------------------------------------------------
    def num_params(self, exclude_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embedding and not self.config.tie_embeddings:
            n -= self.model.embed_tokens.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6 per matmul parameter (forward + backward) plus attention scores
        (12·layers·heads·head_dim·T, as in PaLM / nanochat). The embedding lookup is not a matmul."""
        c = self.config
        t = seq_len or c.seq_len
        n = self.num_params(exclude_embedding=True)
        return 6 * n + 12 * c.n_layer * c.n_head * c.head_dim * t

    # -- forward ----------------------------------------------------------------------------------------
    def embed(self, idx: torch.Tensor, images=None) -> torch.Tensor:
        """Input embeddings for idx; the vision-language wrapper overrides this to splice in images."""
        if images:
            raise ValueError("this model has no vision tower; it cannot take images")
        return self.model.embed_tokens(idx)

    def forward(
        self,
        idx: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        logits_at: LogitsAt = None,
    ):
        """idx [B,T] (or inputs_embeds [B,T,D]); positions [B,T] default arange; attn_mask bool [B,1,T,S]
        (True = attend) or None for plain causal attention. Returns logits (only at `logits_at`, see
        `logits`), or with targets (-1 = ignore) the mean loss."""
        x = self.model.embed_tokens(idx) if inputs_embeds is None else inputs_embeds
        h = self.hidden_states(x, positions, attn_mask, cache)
        if targets is None:
            return self.logits(h, logits_at)
        if logits_at is not None:
            raise ValueError("logits_at selects logits to return; with targets the loss covers every position")
        logits = self.lm_head(h)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)

    def hidden_states(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                      attn_mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """The decoder stack: input embeddings [B, T, D] -> final normalised hidden states [B, T, D]. With a
        cache, keys and values are written at its position, which then moves past these T tokens."""
        B, T, _ = x.shape
        if positions is None:
            start = cache.pos if cache is not None else 0
            positions = torch.arange(start, start + T, device=x.device).expand(B, T)
        cos = self.rope_cos[positions].unsqueeze(1).to(x.dtype)
        sin = self.rope_sin[positions].unsqueeze(1).to(x.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, attn_mask, cache, i)
        if cache is not None:
            cache.pos += T
        return self.model.norm(x)

    def logits(self, h: torch.Tensor, at: LogitsAt = None) -> torch.Tensor:
        """The output head over hidden states [B, T, D], run only on the rows that are needed (the head is a
        vocabulary-sized matmul): None, every position ([B, T, V]); "last", each row's last position
        ([B, 1, V]); a bool mask [B, T] or a (batch_idx, time_idx) pair, those positions ([N, V])."""
        if at is None:
            return self.lm_head(h)
        if isinstance(at, str):
            if at != "last":
                raise ValueError(f"logits_at must be 'last', a bool mask or (batch_idx, time_idx), not {at!r}")
            return self.lm_head(h[:, -1:])
        if isinstance(at, tuple):
            return self.lm_head(h[at[0], at[1]])
        return self.lm_head(h[at])


def causal_mask_with_padding(valid: torch.Tensor, q_len: int, start: int) -> torch.Tensor:
    """Bool mask [B,1,q_len,start+q_len]: causal within the sequence and never attending to padding."""
    S = start + q_len
    q_pos = torch.arange(start, S, device=valid.device)[:, None]
    k_pos = torch.arange(S, device=valid.device)[None, :]
    causal = k_pos <= q_pos
    # A padding query may see nothing else; letting it see itself keeps its row finite (no NaN via softmax
    # of an all-masked row), and no real token ever attends to it.
    return ((causal[None] & valid[:, None, :S]) | (k_pos == q_pos)[None]).unsqueeze(1)


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """Bool mask [B,1,T,T] for packed sequences: causal, and no attention across document boundaries."""
    T = doc_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=doc_ids.device).tril()
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same & causal).unsqueeze(1)
