"""Shared memory between the processes of one host: named arrays in files under /dev/shm.

The game server owns them (``SharedArrays``): a private folder ``/dev/shm/arena-shm-PID-XXXXXXXX`` (0700,
made by ``server.net.proc.make_run_dir``, so the next ``arena`` command removes it if the server was
SIGKILLed) with one file per array (0600) and a ``nonce`` file of random bytes. ``spec()`` describes
them as plain data (folder name, nonce, each array's dtype and shape) for the ``hello`` message; a worker
``attach``es to that description and checks everything before it maps a byte:

- the folder is a direct child of /dev/shm named like ours, the file names are plain words, no
  symbolic links are followed (``O_NOFOLLOW``), the files belong to this user;
- each dtype is a plain number type of the wire's list, each shape small integers, each file exactly
  as big as its array;
- the nonce file holds the nonce of the description: a worker on another host (which reached the server
  by tcp on its loopback, through a tunnel, say) finds no such folder, or another one, and falls back to
  frames over the socket.

Arrays are NumPy views of ``mmap`` objects (plain ``ndarray``s, so numba kernels write into them like into
any buffer). Nothing in shared memory is code or pickled data; a worker reads observations from it and
writes actions into its own reply arrays, and the server validates those actions as it validates any reply.
"""
from __future__ import annotations

import mmap
import os
import re
import secrets
import shutil
import sys

import numpy as np

from server.net.protocol import DTYPES, MAX_MESSAGE_BYTES, MAX_NDIM
from server.net.proc import make_run_dir

ROOT = "/dev/shm"
_FOLDER = re.compile(r"^arena-shm-\d+-[A-Za-z0-9_]+$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: the most arrays one description may hold, and the most bytes in all (a worker maps no more than this)
MAX_ARRAYS = 256
MAX_BYTES = 4 * MAX_MESSAGE_BYTES


class ShmError(ValueError):
    """Shared memory that cannot be used as described (the peer falls back to frames)."""


def available() -> bool:
    """Whether this host has a writable /dev/shm (Linux)."""
    return sys.platform.startswith("linux") and os.path.isdir(ROOT) and os.access(ROOT, os.W_OK | os.X_OK)


def _map(fd: int, nbytes: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    mm = mmap.mmap(fd, max(nbytes, 1), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    return np.frombuffer(mm, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


class SharedArrays:
    """Arrays in shared memory that this process owns; ``close`` removes their files (the memory stays
    mapped wherever it is mapped until those mappings go)."""

    def __init__(self):
        if not available():
            raise ShmError("no writable /dev/shm on this host")
        self.path = make_run_dir("shm", place=ROOT)
        self.nonce = secrets.token_hex(16)
        self._write("nonce", self.nonce.encode())
        self.arrays: dict[str, np.ndarray] = {}

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(os.path.join(self.path, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def array(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A new zero-filled array ``name`` (a plain word, new in this set)."""
        dtype = np.dtype(dtype)
        if not _NAME.match(name) or name in self.arrays or name == "nonce":
            raise ShmError(f"bad or repeated shared array name {name!r}")
        if dtype.name not in DTYPES:
            raise ShmError(f"dtype {dtype} cannot be shared")
        shape = tuple(int(d) for d in shape)
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        fd = os.open(os.path.join(self.path, name), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, nbytes)        # a new file reads as zeros
            arr = _map(fd, nbytes, dtype, shape)
        finally:
            os.close(fd)
        self.arrays[name] = arr
        return arr

    def allocate(self, prefix: str):
        """An allocator for ``simcore.game.shared_buffers``: arrays named ``PREFIX.NAME``."""
        return lambda name, shape, dtype: self.array(f"{prefix}.{name}", shape, dtype)

    def spec(self, names=None) -> dict:
        """Plain data for a ``hello``: where the arrays are and what they hold (``names``: a subset)."""
        names = list(self.arrays) if names is None else list(names)
        return {"dir": os.path.basename(self.path), "nonce": self.nonce,
                "arrays": [[n, self.arrays[n].dtype.name, list(self.arrays[n].shape)] for n in names]}

    def close(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.path, ignore_errors=True)


def attach(spec) -> dict[str, np.ndarray]:
    """Map the arrays a ``spec()`` describes; raises ``ShmError`` for anything not exactly as described."""
    if not available():
        raise ShmError("no /dev/shm on this host")
    if not isinstance(spec, dict) or not isinstance(spec.get("dir"), str) or not isinstance(spec.get("nonce"), str) \
            or not isinstance(spec.get("arrays"), list):
        raise ShmError("a shared-memory description holds dir, nonce and arrays")
    if not _FOLDER.match(spec["dir"]):
        raise ShmError(f"shared-memory folder {spec['dir']!r} is not one of ours")
    items = spec["arrays"]
    if len(items) > MAX_ARRAYS:
        raise ShmError(f"more than {MAX_ARRAYS} shared arrays")
    folder = os.path.join(ROOT, spec["dir"])
    flags = os.O_RDONLY | os.O_NOFOLLOW
    try:
        dfd = os.open(folder, flags | os.O_DIRECTORY)
    except OSError as exc:
        raise ShmError(f"no shared-memory folder {spec['dir']!r} here ({exc.strerror})") from None
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.getuid():
            raise ShmError(f"shared-memory folder {spec['dir']!r} belongs to another user")
        try:
            fd = os.open("nonce", flags, dir_fd=dfd)
            with os.fdopen(fd, "rb") as fh:
                nonce = fh.read(256).decode(errors="replace")
        except OSError:
            nonce = ""
        if not secrets.compare_digest(nonce, spec["nonce"]):
            raise ShmError("the shared-memory folder here is not the peer's (another host?)")
        out, total = {}, 0
        for item in items:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and _NAME.match(item[0])
                    and item[0] != "nonce" and item[1] in DTYPES and isinstance(item[2], list)
                    and len(item[2]) <= MAX_NDIM
                    and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2 ** 31 for d in item[2])):
                raise ShmError(f"bad shared array entry {str(item)[:80]!r}")
            name, dtype, shape = item[0], np.dtype(item[1]), tuple(item[2])
            nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
            total += nbytes
            if total > MAX_BYTES:
                raise ShmError(f"shared arrays of more than {MAX_BYTES} bytes")
            try:
                fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW, dir_fd=dfd)
            except OSError as exc:
                raise ShmError(f"shared array {name!r}: {exc.strerror}") from None
            try:
                fst = os.fstat(fd)
                if fst.st_uid != os.getuid() or fst.st_size != nbytes or not (fst.st_mode & 0o170000) == 0o100000:
                    raise ShmError(f"shared array {name!r} is not a {nbytes}-byte file of ours")
                out[name] = _map(fd, nbytes, dtype, shape)
            finally:
                os.close(fd)
        return out
    finally:
        os.close(dfd)
