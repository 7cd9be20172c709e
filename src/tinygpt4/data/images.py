"""Safe image input for every entry point (SFT data, evals, terminal chat, server).

An image arrives as a data URL, a path relative to a dataset root, or raw bytes. Every route ends in
`decode_image_bytes`, which checks the byte size and the header's pixel count *before* any pixel is decoded,
so a small file that claims to be a huge image (a decompression bomb) costs nothing. Remote URLs are never
fetched and paths may not leave their root.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from tinygpt4.errors import UserError

MAX_IMAGE_BYTES = 8 * 1024 * 1024    # encoded size of one image
MAX_IMAGE_PIXELS = 4096 * 4096       # width x height as the header states it
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MIME_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif"}

# Normalisation to [-1, 1]: the tower is trained from scratch, so no dataset statistics are needed.
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def decode_image_bytes(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES,
                       max_pixels: int = MAX_IMAGE_PIXELS, where: str = "image") -> Image.Image:
    """Decode PNG / JPEG / WebP / GIF (first frame) into an RGB image, refusing anything unsafe."""
    if len(data) > max_bytes:
        raise UserError(f"{where}: {len(data):,} bytes exceeds the limit of {max_bytes:,} bytes")
    if not data:
        raise UserError(f"{where}: empty image data")
    with warnings.catch_warnings():
        # Pillow warns above Image.MAX_IMAGE_PIXELS and raises above twice that; both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(f"{where}: refused as a decompression bomb (too many pixels)") from None
        except UnidentifiedImageError:
            raise UserError(f"{where}: unsupported or unrecognised image format "
                            f"(accepted: {', '.join(FORMATS)})") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise UserError(f"{where}: corrupt image header ({e})") from None
        w, h = img.size
        if w < 1 or h < 1:
            raise UserError(f"{where}: image has no pixels ({w}x{h})")
        if w * h > max_pixels:
            raise UserError(f"{where}: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,}")
        try:
            img.seek(0)  # GIF / animated WebP / APNG: the first frame only
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(f"{where}: refused as a decompression bomb (too many pixels)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise UserError(f"{where}: truncated or corrupt image data ({e})") from None
    if img.size[0] * img.size[1] > max_pixels:  # a frame may not be larger than the header said
        raise UserError(f"{where}: decoded frame exceeds the limit of {max_pixels:,} pixels")
    return _to_rgb(ImageOps.exif_transpose(img))


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (a transparent PNG would otherwise turn black)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def decode_data_url(url: str, *, max_bytes: int = MAX_IMAGE_BYTES, where: str = "image") -> bytes:
    """The bytes of a base64 `data:image/...;base64,...` URL (size checked before decoding)."""
    head, sep, payload = url.partition(",")
    if not sep:
        raise UserError(f"{where}: malformed data URL (no comma)")
    meta = head[5:].split(";")
    mime = meta[0].strip().lower()
    if "base64" not in [m.strip().lower() for m in meta[1:]]:
        raise UserError(f"{where}: only base64 data URLs are accepted")
    if mime and mime not in MIME_TYPES:
        raise UserError(f"{where}: unsupported image type {mime!r} (accepted: PNG, JPEG, WebP, GIF)")
    payload = "".join(payload.split())
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:
        raise UserError(f"{where}: image data exceeds the limit of {max_bytes:,} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{where}: invalid base64 in data URL") from None


def read_image_file(path: str | os.PathLike, *, max_bytes: int = MAX_IMAGE_BYTES,
                    max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode a local file the user named directly (terminal chat): size checked before reading."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image not found: {path}")
    size = p.stat().st_size
    if size > max_bytes:
        raise UserError(f"{path}: {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    return decode_image_bytes(p.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels, where=str(path))


def resolve_under(ref: str, root: str | os.PathLike) -> Path:
    """`root / ref`, refusing a path that leaves root (.., absolute paths, symlinks pointing outside)."""
    base = Path(root).resolve()
    target = (base / ref).resolve()
    if not target.is_relative_to(base):
        raise UserError(f"image path {ref!r} is outside the data folder")
    return target


def load_image_ref(ref: str, root: str | os.PathLike | None = None, *, max_bytes: int = MAX_IMAGE_BYTES,
                   max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An image from a chat message's image_url: a base64 data URL, or a path relative to `root`.
    Remote and file: URLs are refused (nothing is fetched); without a root only data URLs are accepted."""
    if not isinstance(ref, str) or not ref:
        raise UserError("image reference must be a non-empty string")
    short = ref if len(ref) <= 60 else ref[:57] + "..."
    if ref[:5].lower() == "data:":
        data = decode_data_url(ref, max_bytes=max_bytes, where="data URL image")
        return decode_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels, where="data URL image")
    if ref.lower().startswith(("http://", "https://")):
        raise UserError(f"remote image URLs are not fetched ({short}); send the image as a data URL")
    if _SCHEME.match(ref) and not re.match(r"^[a-zA-Z]:[\\/]", ref):
        raise UserError(f"unsupported image URL scheme ({short}); use a base64 data URL")
    if root is None:
        raise UserError(f"image paths are not accepted here ({short}); send the image as a data URL")
    path = resolve_under(ref, root)
    if not path.is_file():
        raise UserError(f"image not found: {ref}")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{ref}: {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    return decode_image_bytes(path.read_bytes(), max_bytes=max_bytes, max_pixels=max_pixels, where=ref)


def image_to_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """FloatTensor [3, size, size], normalised to [-1, 1]. Images are squashed to a square: the world's
    images are square, and a fixed grid keeps one learned position table."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return (t.permute(2, 0, 1).float() / 255.0 - IMAGE_MEAN) / IMAGE_STD


def normalize_pixels(images: list[torch.Tensor]) -> torch.Tensor:
    """uint8 images [3, H, W] (ImageCache's) -> one float batch [N, 3, H, W] normalised as the tower expects."""
    return (torch.stack(images).float() / 255.0 - IMAGE_MEAN) / IMAGE_STD


def image_to_data_url(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt.upper()]
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class ImageCache:
    """Decoded, resized images as uint8 tensors [3, size, size] by (root, ref), the most recently used kept
    (bounded memory)."""

    def __init__(self, size: int, max_bytes: int = 512 << 20):
        self.size = size
        self.max_items = max(256, max_bytes // (3 * size * size))
        self.items: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()

    def get(self, root: str, ref: str) -> torch.Tensor:
        key = (root, ref)
        t = self.items.get(key)
        if t is None:
            img = load_image_ref(ref, root)
            if img.size != (self.size, self.size):
                img = img.resize((self.size, self.size), Image.Resampling.BICUBIC)
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
            t = t.permute(2, 0, 1).contiguous()
            self.items[key] = t
            if len(self.items) > self.max_items:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return t
