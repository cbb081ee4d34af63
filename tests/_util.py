"""Helpers shared by the tests in this folder."""

from __future__ import annotations

import os
from pathlib import Path

# Shaped like a real key on purpose (the scrubber must not rely on the shape) and unique.
PLANTED_KEY = "sk-PLANTED-9f8e7d6c5b4a39281706-zzqq"
# Not shaped like any provider key: only exact-value scrubbing can catch it.
PLANTED_ODD_KEY = "plain-Secret-4471-ODDLY-shaped"


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle`` (also UTF-16, base64-free)."""
    hits = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            data = path.read_bytes()
            if needle.encode() in data or needle.encode("utf-16-le") in data:
                hits.append(str(path))
    return hits
