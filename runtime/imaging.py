"""A tiny PNG encoder (numpy + zlib) for sending video frames to a vision LLM."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def downscale(rgb: np.ndarray, max_side: int = 512) -> np.ndarray:
    h, w = rgb.shape[:2]
    step = max(1, -(-max(h, w) // max_side))
    return rgb[::step, ::step]


def encode_png(rgb: np.ndarray) -> bytes:
    """(height, width, 3|4) uint8 → PNG bytes."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError("expected an (h, w, 3|4) uint8 array")
    h, w, c = rgb.shape
    raw = np.zeros((h, 1 + w * c), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = rgb.reshape(h, w * c)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 6 if c == 4 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))
