"""Checkpoints: safetensors + JSON, every file written atomically (temp file + rename).

A checkpoint folder is self-describing: model.safetensors, config.json and tokenizer.json are all `serve`,
`chat` and `eval` need. Exact-resume state lives in `resume/` (model, optimizer, train_state.json), which is
written as a whole new folder and swapped in with a rename, so a kill at any moment leaves either the old
or the new state complete, never a mix of two steps.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tinygpt4.config import ModelConfig
from tinygpt4.errors import UserError
from tinygpt4.model.gpt import GPT
from tinygpt4.model.vlm import VLM
from tinygpt4.runtime import atomic_write_text, default_mode
from tinygpt4.tokenizer import Tokenizer


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without tied duplicates (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for k, v in model.state_dict().items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if ptr in seen:
            continue
        seen.add(ptr)
        out[k] = v.detach().contiguous().cpu()
    return out


def build_model(cfg: ModelConfig, device="cpu", seed: int | None = 0, init: bool = True):
    """A text-only GPT, or the vision-language wrapper when the config has a vision tower."""
    if cfg.vision is not None:
        return VLM.build(cfg, device=device, seed=seed, init=init)
    return GPT.build(cfg, device=device, seed=seed, init=init)


def save_model(out_dir: str | os.PathLike, model, tokenizer: Tokenizer | None = None, extra: dict | None = None):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(_unique_state(model), out / "model.safetensors", {"format": "pt"})
    config = {"format": "tinygpt4", "model": model.config.to_dict(), **(extra or {})}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2))
    if tokenizer is not None:
        tokenizer.save(out)


def read_config(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{model_dir} is not a tinygpt4 checkpoint (no config.json)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e})") from None
    if "model" not in cfg:
        raise UserError(f"{path}: missing the 'model' section")
    return cfg


def load_weights(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if getattr(model.config, "tie_embeddings", False):  # tied head shares the embedding's storage
        missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if unexpected or missing:
        raise UserError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")


CHAT_STAGES = ("rl", "sft", "base")  # a run folder's checkpoints, most post-trained first


def chat_model_dir(path: str | os.PathLike) -> Path:
    """A checkpoint folder as given, or for a run folder (run.json, no config.json) its most post-trained
    chat checkpoint: the RL model when the run has one, else SFT, else base."""
    d = Path(path)
    if (d / "config.json").is_file() or not (d / "run.json").is_file():
        return d
    for stage in CHAT_STAGES:
        if (d / stage / "model.safetensors").is_file():
            return d / stage
    raise UserError(f"{path} is a run folder with no trained checkpoint yet (no {', '.join(CHAT_STAGES)})")


def load_model(model_dir: str | os.PathLike, device: str = "cpu"):
    """(model, tokenizer) from a checkpoint folder (or a run folder's most post-trained one), in eval mode."""
    d = chat_model_dir(model_dir)
    if not d.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    cfg = ModelConfig.from_dict(read_config(d)["model"])
    weights = d / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{model_dir}: no model.safetensors")
    model = build_model(cfg, device="cpu", init=False)
    load_weights(model, weights)
    model.to(device).eval()
    return model, Tokenizer.load(d)


# ---- exact-resume state ---------------------------------------------------------------------------------

def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{name}"] = val.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    for key, val in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    meta = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


def save_resume_state(out_dir: str | os.PathLike, model, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write resume/ as a complete new folder, then swap it in (rename is atomic on one filesystem)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".resume-"))
    try:
        tmp.chmod(default_mode(directory=True))
        save_file(_unique_state(model), str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _flatten_optimizer(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        rng_tensors, rng_meta = rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        full = {**state, "optimizer": opt_meta, "rng": rng_meta}
        (tmp / "train_state.json").write_text(json.dumps(full))
        final, old = out / "resume", out / ".resume-old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_resume_state(out_dir: str | os.PathLike, model, optimizer: torch.optim.Optimizer) -> dict | None:
    """Restore model, optimizer and RNG; return the trainer's state dict, or None if there is nothing to resume."""
    out = Path(out_dir)
    d = out / "resume"
    if not (d / "train_state.json").is_file():
        d = out / ".resume-old"  # killed between the two renames: the previous state is complete
        if not (d / "train_state.json").is_file():
            return None
    state = json.loads((d / "train_state.json").read_text())
    load_weights(model, d / "model.safetensors")
    with safe_open(str(d / "optimizer.safetensors"), framework="pt") as f:
        opt_tensors = {k: f.get_tensor(k) for k in f.keys()}
    _unflatten_optimizer(optimizer, opt_tensors, state.pop("optimizer"))
    set_rng_state(load_file(str(d / "rng.safetensors")), state.pop("rng"))
    return state
