"""Where and how code runs: the device, the one compute-dtype policy, autocast, torch.distributed setup,
PyTorch's deterministic mode, and atomic file writes. Every stage imports these from here; nothing here
imports a feature module."""

from __future__ import annotations

import functools
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.distributed as dist

from tinygpt4.errors import UserError

# ---- hardware ---------------------------------------------------------------------------------------------


@cache
def cpu_has_bf16() -> bool:
    """AMX or AVX-512 BF16: bf16 matmuls run natively, so autocast pays off on the CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(device: str = "auto") -> torch.device:
    """"auto": this process's GPU when there is one, else the CPU. A bare "cuda" also means this process's GPU
    (torchrun's LOCAL_RANK), so `torch.cuda.set_device` and DDP get an index."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r}: no CUDA GPU is visible to PyTorch here (try --device cpu)")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        # fp32 matmuls outside autocast (fp32 logits, evaluation, --dtype fp32) on the tensor cores as TF32
        torch.set_float32_matmul_precision("high")
    return dev


def compute_dtype(device: torch.device, setting: str = "auto", *, training: bool = False) -> torch.dtype:
    """The dtype matmuls run in under autocast. "fp32"/"bf16" as asked; "auto": bf16 on a GPU that has it;
    on the CPU, bf16 only for training on a CPU with bf16 units (elsewhere it is emulated, hundreds of times
    slower). Inference on the CPU stays fp32 everywhere, so evaluation scores, generated answers and served
    replies of one checkpoint are the same on every CPU, with or without bf16 units."""
    if setting == "fp32":
        return torch.float32
    if setting == "bf16":
        return torch.bfloat16
    if setting != "auto":
        raise ValueError(f"unknown dtype {setting!r} (auto, bf16 or fp32)")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if training and cpu_has_bf16() else torch.float32


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to `dtype`, or nothing at all for fp32."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


@contextmanager
def deterministic_algorithms(on: bool):
    """PyTorch's deterministic mode for the duration, then the caller's setting back. Inductor's CPU code
    for the embedding's backward (index_put with accumulate) adds rows from several threads with atomics, so
    two compiled runs of one seed drifted apart within ten steps; in deterministic mode it falls back to the
    eager sorted kernel. warn_only: an op without a deterministic kernel warns instead of stopping a run."""
    if not on:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


# ---- distributed ------------------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Under torchrun: join the process group (NCCL on GPUs, gloo on CPU). Otherwise a single process."""
    ws = int(os.environ.get("WORLD_SIZE", 1))
    if ws <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


# ---- atomic writes ----------------------------------------------------------------------------------------

@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The permissions open() or mkdir() would give under the umask; temp files are made 0600/0700, and a
    checkpoint or report renamed into place must not stay private to its writer."""
    return (0o777 if directory else 0o666) & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it: a reader sees the old or the new file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
