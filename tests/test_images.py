import base64
import io
import struct
import zlib

import pytest
import torch
from PIL import Image

from tinygpt4.data.images import (
    MAX_IMAGE_PIXELS,
    decode_image_bytes,
    image_to_tensor,
    load_image_ref,
    read_image_file,
)
from tinygpt4.errors import UserError


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with a few bytes of pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_supported_formats_decode_to_rgb(fmt):
    img = Image.new("RGB", (20, 12), (200, 30, 30))
    out = decode_image_bytes(_bytes(img, fmt))
    assert out.mode == "RGB" and out.size == (20, 12)
    r, g, b = out.getpixel((10, 6))
    assert r > 150 and g < 80 and b < 80


def test_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    px = decode_image_bytes(buf.getvalue()).getpixel((4, 4))
    assert px[0] > 200 and px[2] < 50


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (30, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_image_bytes(_bytes(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (10, 30)


def test_alpha_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    out = decode_image_bytes(_bytes(img, "PNG"))
    assert out.getpixel((3, 3)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (255, 0, 0)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    out = decode_image_bytes(_bytes(pal, "PNG", transparency=0))
    assert out.getpixel((1, 1)) == (255, 255, 255)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(UserError, match="decompression bomb"):
        decode_image_bytes(_png_header_only(40000, 40000))


def test_oversize_image_is_refused_from_its_header():
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    with pytest.raises(UserError, match="exceeds the limit"):
        decode_image_bytes(_png_header_only(side, side))
    small = _bytes(Image.new("RGB", (40, 40)), "PNG")
    with pytest.raises(UserError, match="1,600 pixels exceeds the limit of 1,000"):
        decode_image_bytes(small, max_pixels=1000)


def test_byte_cap_is_checked_first():
    data = _bytes(Image.new("RGB", (16, 16)), "PNG")
    with pytest.raises(UserError, match="bytes exceeds the limit"):
        decode_image_bytes(data, max_bytes=len(data) - 1)
    with pytest.raises(UserError, match="exceeds the limit"):
        load_image_ref(_data_url(b"\x00" * 4000), None, max_bytes=1000)


def test_truncated_file_is_refused():
    img = Image.effect_noise((64, 64), 60).convert("RGB")
    data = _bytes(img, "PNG")
    with pytest.raises(UserError, match="truncated or corrupt"):
        decode_image_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_unsupported_formats_are_refused(fmt):
    with pytest.raises(UserError, match="unsupported or unrecognised image format"):
        decode_image_bytes(_bytes(Image.new("RGB", (8, 8)), fmt))


def test_garbage_and_empty_are_refused():
    with pytest.raises(UserError, match="unsupported or unrecognised"):
        decode_image_bytes(b"this is not an image at all")
    with pytest.raises(UserError, match="empty"):
        decode_image_bytes(b"")


def test_data_urls():
    png = _bytes(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    assert load_image_ref(_data_url(png)).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(UserError, match="base64"):
        load_image_ref("data:image/png,rawbytes")
    with pytest.raises(UserError, match="invalid base64"):
        load_image_ref("data:image/png;base64,@@@@")
    with pytest.raises(UserError, match="unsupported image type"):
        load_image_ref(_data_url(png, "text/html"))


@pytest.mark.parametrize("ref", ["http://example.com/a.png", "https://example.com/a.png", "file:///etc/passwd",
                                 "ftp://x/y.png"])
def test_remote_and_file_urls_are_refused(ref, tmp_path):
    with pytest.raises(UserError, match="not fetched|scheme"):
        load_image_ref(ref, tmp_path)


def test_relative_paths_stay_under_root(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(root / "images" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    assert load_image_ref("images/a.png", root).getpixel((0, 0)) == (9, 9, 9)
    for bad in ["../secret.png", "images/../../secret.png", str(tmp_path / "secret.png")]:
        with pytest.raises(UserError, match="outside the data folder"):
            load_image_ref(bad, root)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(UserError, match="outside the data folder"):
        load_image_ref("link.png", root)
    with pytest.raises(UserError, match="not found"):
        load_image_ref("images/missing.png", root)
    with pytest.raises(UserError, match="not accepted here"):
        load_image_ref("images/a.png", None)


def test_read_image_file_reports_missing_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="image not found"):
        read_image_file(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError):
        read_image_file(bad)


def test_image_to_tensor_shape_and_range():
    img = Image.new("RGB", (10, 20), (255, 0, 128))
    t = image_to_tensor(img, 16)
    assert t.shape == (3, 16, 16) and t.dtype == torch.float32
    assert torch.allclose(t[0], torch.ones(16, 16)) and torch.allclose(t[1], -torch.ones(16, 16))
    assert float(t.min()) >= -1 and float(t.max()) <= 1
