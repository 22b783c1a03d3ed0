"""Animated GIFs of rendered frames, written frame by frame: LZW by a small numba kernel, no imaging library.

The palette is ``render._palette()``: every colour the renderers draw with, then a 6x6x6 cube.
"""
from __future__ import annotations

import numba
import numpy as np

from .render import _palette


class GifWriter:
    """An animated GIF, written frame by frame (LZW by a small numba kernel; no imaging library).

    Colours drawn by this module map to themselves exactly; others to a 6x6x6 colour cube. Each frame
    stores only the rectangle that changed; an unchanged frame lengthens the previous one."""

    def __init__(self, path, size: tuple[int, int], loop: bool = True):
        self.width, self.height = size
        self.palette, self._named = _palette()
        packed = _pack(self.palette[: self._named])
        self._order = np.argsort(packed)
        self._sorted = packed[self._order]
        self._fh = open(path, "wb")
        self._prev: np.ndarray | None = None
        self._pending: tuple[bytes, int] | None = None
        self.frames = 0
        fh = self._fh
        fh.write(b"GIF89a" + _u16(self.width) + _u16(self.height) + bytes([0xF7, 0, 0]))
        fh.write(self.palette.tobytes())
        if loop:
            fh.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")

    def _indices(self, rgb: np.ndarray) -> np.ndarray:
        packed = _pack(rgb.reshape(-1, 3))
        at = np.minimum(np.searchsorted(self._sorted, packed), self._sorted.size - 1)
        exact = self._sorted[at] == packed
        idx = np.where(exact, self._order[at], 0).astype(np.uint8)
        if not exact.all():
            q = (rgb.reshape(-1, 3)[~exact].astype(np.int64) * 6) // 256
            idx[~exact] = (self._named + q[:, 0] * 36 + q[:, 1] * 6 + q[:, 2]).astype(np.uint8)
        return idx.reshape(rgb.shape[:2])

    def add(self, rgb: np.ndarray, delay_s: float) -> None:
        """Append a ``(height, width, 3)`` frame shown for ``delay_s`` seconds."""
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"frame of shape {rgb.shape}, the GIF is {self.height}x{self.width}")
        delay = max(1, int(round(delay_s * 100)))
        idx = self._indices(rgb)
        if self._prev is None:
            top, left, bottom, right = 0, 0, self.height, self.width
        else:
            changed = idx != self._prev
            if not changed.any():
                data, d = self._pending
                self._pending = (data, d + delay)
                return
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        self._flush()
        self._prev = idx
        part = np.ascontiguousarray(idx[top:bottom, left:right]).reshape(-1)
        out = np.empty(part.size * 2 + 1024, dtype=np.uint8)
        n = _lzw_nb(part, out)
        data = bytes(out[:n])
        blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
        image = (b"\x2c" + _u16(left) + _u16(top) + _u16(right - left) + _u16(bottom - top) + b"\x00"
                 + b"\x08" + blocks + b"\x00")
        self._pending = (image, delay)
        self.frames += 1

    def _flush(self) -> None:
        if self._pending is not None:
            image, delay = self._pending
            # graphic control: disposal 1 (leave the frame in place), the delay in 1/100 s
            self._fh.write(b"\x21\xf9\x04\x04" + _u16(min(delay, 65535)) + b"\x00\x00" + image)
            self._pending = None

    def close(self) -> None:
        if self._fh.closed:
            return
        self._flush()
        self._fh.write(b"\x3b")
        self._fh.close()


def _u16(v: int) -> bytes:
    return int(v).to_bytes(2, "little")


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


@numba.njit(cache=True)
def _emit_nb(out, pos, acc, nacc, code, bits):
    """Append ``code`` (``bits`` wide, least significant bit first) to the bit stream; whole bytes out."""
    acc |= code << nacc
    nacc += bits
    while nacc >= 8:
        out[pos] = acc & 0xFF
        pos += 1
        acc >>= 8
        nacc -= 8
    return pos, acc, nacc


@numba.njit(cache=True)
def _lzw_nb(pixels, out):
    """GIF LZW of 8-bit ``pixels`` into ``out``; returns the byte count (giflib's code-size rules)."""
    clear, eoi = 256, 257
    table = np.full((4096, 256), -1, dtype=np.int16)
    next_code, bits, max_code = eoi + 1, 9, 512
    pos, acc, nacc = _emit_nb(out, 0, np.int64(0), 0, clear, bits)
    prefix = np.int64(pixels[0])
    k = np.int64(0)
    for i in range(1, pixels.size + 1):
        if i < pixels.size:
            k = np.int64(pixels[i])
            c = table[prefix, k]
            if c != -1:
                prefix = np.int64(c)
                continue
        pos, acc, nacc = _emit_nb(out, pos, acc, nacc, prefix, bits)
        if next_code >= max_code and bits < 12:
            bits += 1
            max_code = 1 << bits
        if i == pixels.size:
            break
        if next_code >= 4095:            # the table is full: start it afresh
            pos, acc, nacc = _emit_nb(out, pos, acc, nacc, clear, bits)
            table[:, :] = -1
            next_code, bits, max_code = eoi + 1, 9, 512
        else:
            table[prefix, k] = next_code
            next_code += 1
        prefix = k
    pos, acc, nacc = _emit_nb(out, pos, acc, nacc, eoi, bits)
    if nacc > 0:
        out[pos] = acc & 0xFF
        pos += 1
    return pos
