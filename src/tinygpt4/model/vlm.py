"""The vision-language wrapper: ViT + projector + the text decoder, glued at the input embeddings.

Each image becomes `tokens_per_image` embeddings written over the <|image|> placeholder ids the chat renderer
put where the image sits. Images fill placeholder runs in row-major order (row 0's images first, each row's
in the order they appear), so a batch may mix conversations with different numbers of images. After the
splice, the decoder is the plain text model: `forward` takes the same arguments as GPT.forward (plus
`images`), so the KV-cache engine, the trainer and the evals use a VLM exactly like a GPT.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tinygpt4.config import ModelConfig, VisionConfig
from tinygpt4.data.images import image_to_tensor
from tinygpt4.model.gpt import GPT, KVCache, LogitsAt, rope_tables
from tinygpt4.model.vision import Projector, VisionTransformer, init_vision_weights
from tinygpt4.tokenizer import SPECIALS

IMAGE_ID = SPECIALS.index("<|image|>")


class VLM(nn.Module):
    _compiled_hidden_states = None  # set by compile_decoder()

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vision is None:
            raise ValueError("VLM needs a config with a vision section")
        self.config = cfg
        self.lm = GPT(cfg)
        self.vision = VisionTransformer(cfg.vision)
        self.projector = Projector(cfg.vision, cfg.n_embd)

    # -- construction ------------------------------------------------------------------------------------
    @property
    def rope_len(self) -> int:
        return self.lm.rope_len

    @property
    def tokens_per_image(self) -> int:
        return self.config.vision.tokens_per_image

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        self.lm.init_weights(seed)
        self.init_vision(seed)

    @torch.no_grad()
    def init_vision(self, seed: int | None = None) -> None:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(0 if seed is None else seed + 1)  # a stream of its own, not the decoder's
        init_vision_weights(self.vision, gen)
        init_vision_weights(self.projector, gen)

    @classmethod
    def build(cls, cfg: ModelConfig, device="cpu", seed: int | None = 0, init: bool = True) -> VLM:
        with torch.device("meta"):
            model = cls(cfg)
        model = model.to_empty(device=device)
        if init:
            model.init_weights(seed)
        else:  # weights are loaded next; only the RoPE tables (buffers, not saved) need filling
            cos, sin = rope_tables(cfg.head_dim, model.lm.rope_len, cfg.rope_theta, device)
            model.lm.rope_cos.copy_(cos)
            model.lm.rope_sin.copy_(sin)
        return model

    @classmethod
    def from_text_model(cls, gpt: GPT, vision_cfg: VisionConfig, seed: int | None = 0) -> VLM:
        """Attach a freshly initialised vision tower and projector to a trained text-only decoder (which
        is used as is, not copied)."""
        cfg = copy.deepcopy(gpt.config)
        cfg.vision = copy.deepcopy(vision_cfg)
        device = next(gpt.parameters()).device
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.config = cfg
        model.lm = gpt
        model.vision = VisionTransformer(cfg.vision).to(device)
        model.projector = Projector(cfg.vision, cfg.n_embd).to(device)
        model.init_vision(seed)
        return model

    # -- accounting -------------------------------------------------------------------------------------
    def num_params(self, exclude_embedding: bool = False) -> int:
        return self.lm.num_params(exclude_embedding) + self.vision_params()

    def vision_params(self) -> int:
        return sum(p.numel() for m in (self.vision, self.projector) for p in m.parameters())

    def flops_per_image(self, train_tower: bool = True) -> float:
        """Training FLOPs for one image (6 per weight per position it is applied at): the patch embedding's
        convolutions at their output resolutions, the transformer over the patches, bidirectional attention,
        and the projector over the shuffled tokens (its global summary once per image). A frozen tower
        (train_tower=False) only runs forward: 2 per weight."""
        vc = self.config.vision
        n_patch = (vc.image_size // vc.patch_size) ** 2
        stem, side = 0, vc.image_size
        for m in self.vision.embeddings.modules():
            if isinstance(m, nn.Conv2d):
                side = side // m.stride[0]
                stem += m.weight.numel() * side * side
        blocks = sum(p.numel() for p in self.vision.encoder.parameters() if p.dim() >= 2)
        per_token = sum(m.weight.numel() for m in (self.projector.fc1, self.projector.fc2))
        once = self.projector.global_proj.weight.numel() if self.projector.global_proj is not None else 0
        attn = 12 * vc.depth * vc.width * n_patch * n_patch
        tower = (stem + blocks * n_patch) * 6 + attn
        if not train_tower:
            tower /= 3
        return tower + 6 * (per_token * self.tokens_per_image + once)

    def flops_per_token(self, seq_len: int | None = None, image_token_frac: float = 0.0,
                        train_tower: bool = True) -> float:
        """Decoder FLOPs per token, plus the vision tower's cost spread over the image tokens when a
        fraction `image_token_frac` of the sequence is image placeholders."""
        per_image_token = self.flops_per_image(train_tower) / self.tokens_per_image
        return self.lm.flops_per_token(seq_len) + image_token_frac * per_image_token

    # -- forward ----------------------------------------------------------------------------------------
    def image_pixels(self, images) -> torch.Tensor:
        """PIL images or tensors ([3,S,S] each, or one [N,3,S,S]) -> normalised pixels on the model's device."""
        size = self.config.vision.image_size
        dev = self.lm.lm_head.weight.device
        if torch.is_tensor(images):
            px = images
        else:
            px = torch.stack([im if torch.is_tensor(im) else image_to_tensor(im, size) for im in images])
        if px.dim() != 4 or tuple(px.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be [N, 3, {size}, {size}] (got {list(px.shape)})")
        return px.to(dev, non_blocking=True)

    def encode_images(self, images) -> torch.Tensor:
        """[N, tokens_per_image, n_embd] embeddings for N images."""
        px = self.image_pixels(images)
        dtype = self.projector.fc1.weight.dtype
        if torch.is_autocast_enabled(px.device.type):
            dtype = torch.get_autocast_dtype(px.device.type)
        return self.projector(self.vision(px.to(dtype)))

    def embed(self, idx: torch.Tensor, images=None) -> torch.Tensor:
        """Token embeddings with the images written over their placeholder runs (row-major order)."""
        x = self.lm.model.embed_tokens(idx)
        n_images = 0 if images is None else len(images)
        if n_images == 0:
            return x  # placeholders without images keep their learned embedding (text-only use)
        slots = idx == IMAGE_ID
        need = n_images * self.tokens_per_image
        have = int(slots.sum())
        if have != need:
            raise ValueError(f"{have} image placeholder tokens for {n_images} images "
                             f"({self.tokens_per_image} each expected)")
        feats = self.encode_images(images).reshape(-1, x.shape[-1])
        return x.masked_scatter(slots.unsqueeze(-1), feats.to(x.dtype))

    def forward(
        self,
        idx: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        *,
        images=None,
        inputs_embeds: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        logits_at: LogitsAt = None,
    ):
        """As GPT.forward; `images` (PIL images or pixel tensors) fill idx's placeholder runs. With targets,
        the output head runs only where a target is set (-1 = ignore), the same mean loss for a fraction
        of the cost when few tokens are trained (SFT trains only the replies)."""
        if inputs_embeds is None:
            if idx is None:
                raise ValueError("pass idx or inputs_embeds")
            inputs_embeds = self.embed(idx, images)
        elif images is not None and len(images):
            raise ValueError("images go through embed(); pass either images with idx, or inputs_embeds")
        if targets is None or cache is not None:
            return self.lm(targets=targets, inputs_embeds=inputs_embeds, positions=positions, attn_mask=attn_mask,
                           cache=cache, logits_at=logits_at)
        if logits_at is not None:
            raise ValueError("logits_at selects logits to return; with targets the head runs where a target is set")
        decoder = self.lm.hidden_states
        if self._compiled_hidden_states is not None and torch.is_grad_enabled():
            decoder = self._compiled_hidden_states
        h = decoder(inputs_embeds, positions, attn_mask)
        keep = targets != -1
        if not bool(keep.any()):
            return h.sum() * 0.0  # nothing to learn here; a zero loss that still has a graph
        return F.cross_entropy(self.lm.logits(h, keep).float(), targets[keep])

    def compile_decoder(self, on: bool = True, backend: str = "inductor") -> None:
        """torch.compile the decoder stack that training runs (`GPT.hidden_states` without a cache: [B, T, D]
        embeddings and [B, 1, T, T] masks, the same shapes every step) and leave the vision tower eager: its
        batch is the number of images, which changes every step. Only steps with gradients use it: validation
        under no_grad would need a second graph, a compile that costs more than a few eager batches. on=False
        drops it."""
        self._compiled_hidden_states = torch.compile(self.lm.hidden_states, backend=backend) if on else None
