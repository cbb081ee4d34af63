"""Images for a prompt: a matplotlib figure, a PIL image, PNG/JPEG bytes, a file path, an
IPython ``Image``, or an image a previous cell displayed → :class:`ImagePart` (bytes + mime).

matplotlib and PIL are detected by ``type(obj).__module__`` and never imported here.
:class:`DisplayRecorder` remembers the images the kernel displayed (per execution count), so
``--image Out[5]`` finds a plot cell 5 showed and ``--image last`` the last one shown.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigValidationError

__all__ = ["DisplayRecorder", "ImagePart", "image_from", "resolve_image", "sniff"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImagePart:
    mime: str  # image/png | image/jpeg
    data: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"

    def describe(self) -> str:
        """A placeholder for dry runs: ``[image: PNG 640×480, 12.3 KB]``."""
        kind = self.mime.split("/")[1].upper()
        dims = f" {self.width}×{self.height}" if self.width and self.height else ""
        return f"[image: {kind}{dims}, {len(self.data) / 1024:.1f} KB]"


def sniff(data: bytes) -> ImagePart | None:
    """PNG or JPEG bytes → an :class:`ImagePart` with its size; anything else → None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return ImagePart("image/png", data, w, h)
    if data[:3] == b"\xff\xd8\xff":
        w_h = _jpeg_size(data)
        return ImagePart("image/jpeg", data, *(w_h or (None, None)))
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _bad(what: str, hint: str = "") -> ConfigValidationError:
    return ConfigValidationError(
        f"Cannot attach {what} as an image: give a matplotlib figure, a PIL image, PNG/JPEG "
        f"bytes, an image file path, Out[n] of a cell that showed an image, or 'last'.{hint}",
        [{"field": "image", "message": f"{what} is not an image"}])


def image_from(obj: Any, name: str | None = None) -> ImagePart:
    """``obj`` as PNG/JPEG bytes."""
    label = name or type(obj).__name__
    if isinstance(obj, ImagePart):
        return obj
    mod = (type(obj).__module__ or "").split(".")[0]
    if mod == "matplotlib":
        fig = obj if hasattr(obj, "savefig") else getattr(obj, "figure", None)
        if fig is None or not hasattr(fig, "savefig"):
            raise _bad(label)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=getattr(fig, "dpi", 100))
        return _checked(buf.getvalue(), label)
    if mod == "PIL" and hasattr(obj, "save"):
        buf = io.BytesIO()
        img = obj if obj.mode in ("RGB", "RGBA", "L", "LA", "P") else obj.convert("RGBA")
        img.save(buf, format="PNG")
        return _checked(buf.getvalue(), label)
    if mod == "IPython" and isinstance(getattr(obj, "data", None), bytes):
        return _checked(obj.data, label)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _checked(bytes(obj), label)
    if isinstance(obj, (str, Path)):
        path = Path(obj).expanduser()
        if not path.is_file():
            raise _bad(f"'{obj}'", " No such file.")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise _bad(f"'{obj}'", f" It is over {MAX_IMAGE_BYTES // 2**20} MB.")
        return _checked(path.read_bytes(), f"'{obj}'")
    if isinstance(obj, Mapping):  # a display bundle
        return _from_bundle(obj, label)
    raise _bad(label)


def _checked(data: bytes, label: str) -> ImagePart:
    part = sniff(data)
    if part is None:
        raise _bad(label, " Only PNG and JPEG are sent.")
    return part


def _from_bundle(bundle: Mapping[str, Any], label: str) -> ImagePart:
    for mime in ("image/png", "image/jpeg"):
        raw = bundle.get(mime)
        if raw is None:
            continue
        if isinstance(raw, str) or sniff(bytes(raw)) is None:
            raw = base64.b64decode(raw)
        return _checked(bytes(raw), label)
    raise _bad(label)


class DisplayRecorder:
    """Remembers the images the kernel displays: per execution count and the last one.

    Installed on an IPython shell (``install(shell)``) by wrapping its display publisher's
    ``publish`` — the one place rich output leaves the kernel."""

    KEEP = 20

    def __init__(self) -> None:
        self.by_cell: dict[int, Mapping[str, Any]] = {}
        self.last: Mapping[str, Any] | None = None
        self._shell: Any = None

    def install(self, shell: Any) -> DisplayRecorder:
        pub = getattr(shell, "display_pub", None)
        if pub is None or getattr(pub, "_viagent_recorder", None) is not None:
            return getattr(pub, "_viagent_recorder", None) or self
        original = pub.publish
        recorder = self
        self._shell = shell

        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            with contextlib.suppress(Exception):  # recording never breaks display
                recorder.record(data)
            return original(data, *args, **kwargs)

        pub.publish = publish
        pub._viagent_recorder = self
        return self

    def record(self, data: Any) -> None:
        if not isinstance(data, Mapping) or not any(
                m in data for m in ("image/png", "image/jpeg")):
            return
        bundle = {m: data[m] for m in ("image/png", "image/jpeg") if m in data}
        self.last = bundle
        count = getattr(self._shell, "execution_count", None)
        if isinstance(count, int):
            self.by_cell[count] = bundle
            for old in sorted(self.by_cell)[:-self.KEEP]:
                del self.by_cell[old]


_OUT = re.compile(r"^Out\[\s*(\d+)\s*\]$")


def resolve_image(expr: str, ns: Mapping[str, Any],
                  recorder: DisplayRecorder | None = None) -> ImagePart:
    """An ``--image`` expression: ``last``, ``Out[n]``, a path string, or a name in ``ns``."""
    expr = expr.strip()
    if expr == "last":
        if recorder is None or recorder.last is None:
            raise _bad("'last'", " No image has been displayed in this kernel yet.")
        return _from_bundle(recorder.last, "the last displayed image")
    m = _OUT.match(expr)
    if m:
        n = int(m.group(1))
        out = ns.get("Out")
        value = out.get(n) if isinstance(out, Mapping) else None
        if value is not None:
            return image_from(value, expr)
        if recorder is not None and n in recorder.by_cell:
            return _from_bundle(recorder.by_cell[n], expr)
        raise _bad(expr, f" Cell {n} returned or showed no image.")
    try:
        value = eval(expr, {}, dict(ns))  # the user's own kernel namespace
    except Exception as exc:
        raise ConfigValidationError(
            f"Cannot attach image '{expr}': {type(exc).__name__}: {exc}.",
            [{"field": "image", "message": f"{expr} not found"}]) from None
    return image_from(value, expr)
