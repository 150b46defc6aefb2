"""Image files <-> float32 CHW tensors in [0, 1].

Reads PNG, JPEG and TIFF at 8 or 16 bits (and float TIFF), grey (expanded to RGB) and RGBA (alpha
dropped with a warning). Writes PNG/TIFF at 8 or 16 bits and JPEG at 8 bits, atomically (temp
file, fsync, rename). Every problem with a file is a one-line :class:`PnganError` naming it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from pngan.errors import PnganError
from pngan.io.atomic import atomic_path

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF_EXTS = (".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")


def list_images(directory: str | Path) -> list[Path]:
    """Image files directly in ``directory`` (not recursive), sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        raise PnganError("no such folder", d)
    entries = sorted(d.iterdir())
    broken = [p for p in entries if is_image_file(p) and p.is_symlink() and not p.exists()]
    if broken and ("broken-link", str(d)) not in _noted:  # once per folder, however often it is listed
        _noted.add(("broken-link", str(d)))
        names = ", ".join(f"{p.name} -> {os.readlink(p)}" for p in broken[:5]) + (" ..." if len(broken) > 5 else "")
        warnings.warn(f"{d}: skipped {len(broken)} broken symbolic link(s) (the file it points to does not exist): "
                      f"{names}", stacklevel=2)
    other = sorted({p.suffix.lower() for p in entries if p.is_file() and p.suffix.lower() in _OTHER_IMAGE_EXTS})
    if other and ("other-format", str(d)) not in _noted:  # an image pngan cannot read is named, not dropped silently
        _noted.add(("other-format", str(d)))
        warnings.warn(f"{d}: skipped the {', '.join(other)} file(s) (pngan reads {', '.join(IMAGE_EXTS)})",
                      stacklevel=2)
    return [p for p in entries if p.is_file() and is_image_file(p)]


_OTHER_IMAGE_EXTS = (".webp", ".gif", ".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw",
                     ".jp2", ".exr", ".ppm", ".pgm")


def _to_float(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype in (np.int32, np.uint32):  # Pillow's 'I' mode for 16-bit greyscale PNG
        if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            raise PnganError(f"unsupported integer range [{arr.min()}, {arr.max()}]", path)
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise PnganError(f"{bad} pixel value(s) are NaN or Inf", path)
        if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
            raise PnganError(f"float image values must lie in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]", path)
        return np.clip(arr, 0.0, 1.0)
    raise PnganError(f"unsupported pixel type {arr.dtype}", path)


_noted: set[tuple[str, str]] = set()


def _note(kind: str, path: Path, message: str) -> None:
    """Say what was dropped or reinterpreted once per kind and folder (not once per file)."""
    key = (kind, str(Path(path).parent))
    if key not in _noted:
        _noted.add(key)
        warnings.warn(f"{path}: {message} (said once for this folder; its other files are read the same way)",
                      stacklevel=4)


def _channels(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        _note("alpha", path, "alpha channel dropped")
        return np.repeat(arr[:, :, :1], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 4:
        _note("alpha", path, "alpha channel dropped")
        return arr[:, :, :3]
    raise PnganError(f"unsupported image shape {arr.shape} (expected HxW, HxWx1, HxWx3 or HxWx4)", path)


_TIFF_DIRECT = (1, 2)  # photometric MINISBLACK, RGB: tifffile's array is the image; others go through Pillow


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tf:
            photometric = int(tf.pages[0].photometric)
        if photometric not in _TIFF_DIRECT:  # CMYK, YCbCr, CIELAB, palette, min-is-white: Pillow converts
            return _read_pillow(path)
        arr = tifffile.imread(str(path))
    except PnganError:
        raise
    except Exception as e:  # tifffile raises many kinds
        raise PnganError(f"cannot read TIFF: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", path) from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (CHW) TIFF
    return arr


def _png_bit_depth(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16(path: Path) -> np.ndarray:
    """16-bit colour PNG (Pillow would reduce it to 8 bits): decoded with pypng."""
    import png

    try:
        reader = png.Reader(filename=str(path))
        w, h, rows, info = reader.asDirect()
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    except Exception as e:
        raise PnganError(f"cannot decode 16-bit PNG ({type(e).__name__}: {e}); the file may be truncated or corrupt", path) from None
    planes = info["planes"]
    return arr.reshape(h, w, planes) if planes > 1 else arr.reshape(h, w)


_GREY16 = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")
_REINTERPRETED = ("CMYK", "YCbCr", "LAB", "HSV")


def pillow_to_array(im, path: Path | str = "<image>") -> np.ndarray:
    """Any Pillow mode -> an array ``_to_float``/``_channels`` take: grey (HxW) or RGB (HxWx3).

    1, L, P, RGB, RGBX: exact (palette looked up, padding dropped). 16-bit grey (I;16*) and 32-bit
    integer (I) hold 0..65535 (divided by 65535 later); F holds floats (must lie in [0, 1]). Alpha
    modes (LA, La, PA, RGBA, RGBa, P with transparency) lose their alpha (premultiplied modes are
    un-premultiplied first) and CMYK, YCbCr, LAB, HSV are converted with Pillow's conversion to RGB;
    both are said once per folder (a warning)."""
    path = Path(path)
    mode = im.mode
    if mode in _GREY16:
        return np.asarray(im).astype(np.uint16)
    if mode in ("I", "F", "L", "RGB"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "RGBX":
        return np.asarray(im.convert("RGB"))
    if mode == "P" and "transparency" not in im.info:
        return np.asarray(im.convert("RGB"))
    if mode in _ALPHA or mode == "P":
        _note("alpha", path, f"alpha channel dropped (mode {mode})")
        if mode == "La":
            im = im.convert("LA")
        return np.asarray(im.convert("RGB"))
    _note(f"mode-{mode}", path, f"{mode} image converted to RGB (Pillow's conversion)"
          + ("" if mode in _REINTERPRETED else "; colours may be approximate"))
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError as e:
        raise PnganError(f"unsupported image mode {mode} ({e})", path) from None


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    depth = _png_bit_depth(path)
    if depth is not None and depth[0] == 16 and depth[1] in (2, 4, 6):
        return _read_png16(path)

    try:
        with Image.open(path) as im:
            im.load()
            return pillow_to_array(im, path)
    except UnidentifiedImageError:
        raise PnganError("not a readable image (unknown or corrupt format)", path) from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PnganError(f"cannot decode image ({msg}); the file may be truncated or corrupt", path) from None
    except Image.DecompressionBombError as e:
        raise PnganError(f"image too large to decode safely ({e})", path) from None


def read_array(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an HxWx3 float32 array in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise PnganError("no such image file", path)
    if path.stat().st_size == 0:
        raise PnganError("empty file", path)
    if path.suffix.lower() in _TIFF_EXTS:
        arr = _read_tiff(path)
    else:
        arr = _read_pillow(path)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise PnganError(f"unsupported image shape {arr.shape}", path)
    return _channels(_to_float(arr, path), path)


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 tensor in [0, 1]."""
    arr = read_array(path)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels where the format allows it."""
    path = Path(path)
    if not path.is_file():
        raise PnganError("no such image file", path)
    if path.suffix.lower() in _TIFF_EXTS:
        import tifffile

        try:
            with tifffile.TiffFile(str(path)) as tf:
                shape = tf.pages[0].shape
        except Exception as e:
            raise PnganError(f"cannot read TIFF header: {type(e).__name__}", path) from None
        if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 2, 3, 4):
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise PnganError("not a readable image (unknown or corrupt format)", path) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise PnganError(f"cannot read image header ({e})", path) from None
    return h, w


def _to_uint(img: torch.Tensor | np.ndarray, bits: int) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        t = img.detach().to("cpu", torch.float32)
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError("write_image takes one image, not a batch")
            t = t[0]
        if t.ndim == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not np.isfinite(arr).all():
        raise ValueError("image to write contains NaN or Inf")
    peak = 255 if bits == 8 else 65535
    q = np.rint(np.clip(arr, 0.0, 1.0) * peak)
    return q.astype(np.uint8 if bits == 8 else np.uint16)


def encode_image(img: torch.Tensor | np.ndarray, ext: str, bits: int = 8, quality: int = 95) -> bytes:
    """Encode an image (CHW / HWC float in [0, 1]) to the bytes of a file with extension ``ext``."""
    ext = ext.lower()
    if bits not in (8, 16):
        raise PnganError(f"bits must be 8 or 16, got {bits}")
    arr = _to_uint(img, bits)
    buf = io.BytesIO()
    if ext in _TIFF_EXTS:
        import tifffile

        tifffile.imwrite(buf, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
    elif ext in (".png",):
        from PIL import Image

        if bits == 16:
            if arr.ndim == 2:
                Image.fromarray(arr.astype(np.uint16)).save(buf, format="PNG")
            else:  # Pillow cannot write 16-bit RGB PNG
                buf.write(_png16_rgb(arr))
        else:
            Image.fromarray(arr).save(buf, format="PNG")
    elif ext in (".jpg", ".jpeg"):
        if bits != 8:
            raise PnganError("JPEG is 8-bit only")
        from PIL import Image

        Image.fromarray(arr).save(buf, format="JPEG", quality=quality, subsampling=0)
    elif ext == ".bmp":
        from PIL import Image

        Image.fromarray(_to_uint(img, 8)).save(buf, format="BMP")
    else:
        raise PnganError(f"unsupported image extension '{ext}' (use .png, .jpg, .tif)")
    return buf.getvalue()


def _png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow only writes 8-bit RGB)."""
    import struct
    import zlib

    h, w, c = arr.shape
    raw = np.empty((h, 1 + w * c * 2), dtype=np.uint8)
    raw[:, 0] = 0  # filter: none
    raw[:, 1:] = np.ascontiguousarray(arr.astype(">u2")).reshape(h, -1).view(np.uint8)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")


def write_image(
    path: str | Path,
    img: torch.Tensor | np.ndarray,
    bits: int = 8,
    *,
    overwrite: bool = True,
    quality: int = 95,
) -> Path:
    """Write ``img`` ((3,H,W)/(H,W,3) float in [0, 1]) atomically; format from the extension.

    With ``overwrite=False`` an existing file is an error (commands use it to protect inputs).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise PnganError("refusing to overwrite an existing file", path)
    data = encode_image(img, path.suffix, bits=bits, quality=quality)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except PermissionError:
        raise PnganError("cannot write here (permission denied)", path.parent) from None
    return path
