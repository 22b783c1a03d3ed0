"""Doorbells: the control messages of shared-memory requests on one host, over a pair of named pipes.

With shared memory (``server.net.shm``) an ``act`` request and its reply are protocol headers alone (which
rows, which sequence number); the rows themselves are in shared arrays. Those headers can travel over
the ZeroMQ socket, but there each one passes through an I/O thread on both sides before the reader sees
it: four threads wake per message. A pipe wakes the reader itself. Measured on the 2-core VM our figures
come from (two processes, each idle 2 ms before each message, as a worker is while the server steps): a
ZeroMQ ipc round trip 190 us at the median, a pipe round trip 17-28 us. At ~150 batched steps a second
with a request and a reply per agent per step, the difference is several percent of the run.

A doorbell is one direction of such a pair: the game server writes ``act`` headers into ``PREFIX.req.N``
and reads replies from ``PREFIX.rep.N``; the worker the other way round. Both FIFOs live in the server's
private shared-memory folder (0700, ``server.net.shm``), mode 0600; the worker opens them relative to
that folder, refusing symbolic links, anything that is not a FIFO and anything that is not ours.

What travels is exactly the protocol's header frame (``server.net.protocol.encode`` of a message without
arrays) after its length (4 bytes, little endian), and it is decoded by ``protocol.decode`` like any
message. A frame is at most ``MAX_FRAME`` bytes (``PIPE_BUF``, so each write of whole frames up to that
size is atomic: a reader never sees half of one); a length above that, or a frame that does not decode,
means the peer is not speaking this protocol, and the reader stops using the doorbell (its messages go
over the socket again). A writer that cannot write at once (the pipe full: the reader is stuck) gets
False and sends over the socket instead; a reader gone (the pipe broken) closes the doorbell the same way.
Heartbeats, hellos and everything with arrays stay on the socket.
"""
from __future__ import annotations

import errno
import os
import select
import stat
import struct

#: the largest frame a doorbell carries, length prefix included: PIPE_BUF, the size up to which a pipe
#: write is atomic (an act header or a reply header is ~150 bytes)
MAX_FRAME = select.PIPE_BUF
_LEN = struct.Struct("<I")
#: the largest header a frame holds
MAX_HEADER = MAX_FRAME - _LEN.size
#: bytes per read from a doorbell, and the most reads per ``Reader.read`` (the rest waits for the next call)
READ_CHUNK = 64 * 1024
READS = 4


class DoorbellError(OSError):
    """A doorbell that cannot be used (the peer falls back to the socket)."""


def make_pair(folder: str, prefix: str, generation: int) -> tuple[str, str]:
    """Make the FIFOs of one worker's doorbells in ``folder`` (the server's private shared-memory folder);
    returns their names (request, reply)."""
    names = (f"{prefix}.req.{generation}", f"{prefix}.rep.{generation}")
    for name in names:
        os.mkfifo(os.path.join(folder, name), 0o600)
    return names


def open_fifo(path: str, write: bool, dir_fd: int | None = None) -> int:
    """Open a FIFO of ours without blocking and without following links; raises ``DoorbellError``.

    For writing it fails (ENXIO) while nobody has the other end open for reading."""
    flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise DoorbellError(exc.errno, f"doorbell {os.path.basename(path)!r}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise DoorbellError(errno.EPERM, f"doorbell {os.path.basename(path)!r} is not a FIFO of ours")
    return fd


def frame(header: bytes) -> bytes:
    """One header frame with its length, ready for ``write``; raises ``ValueError`` when too big."""
    if len(header) > MAX_HEADER:
        raise ValueError(f"a doorbell frame holds at most {MAX_HEADER} header bytes, not {len(header)}")
    return _LEN.pack(len(header)) + header


def write(fd: int, frames: list[bytes]) -> int:
    """Write whole frames (each from ``frame``), as few writes as ``MAX_FRAME`` allows; returns how many
    went out. The rest (the pipe was full) must go another way. Raises ``BrokenPipeError`` when the reader
    is gone."""
    sent = 0
    while sent < len(frames):
        chunk, end = b"", sent
        while end < len(frames) and len(chunk) + len(frames[end]) <= MAX_FRAME:
            chunk += frames[end]
            end += 1
        try:
            os.write(fd, chunk)       # at most PIPE_BUF bytes: all of it or nothing
        except BlockingIOError:
            return sent
        sent = end
    return sent


def _hung_up(fd: int) -> bool:
    """Whether the writers of the FIFO read by ``fd`` have gone (a read returns 0 bytes also before the
    first writer has come; only a hang-up tells the two apart)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))


class Reader:
    """Frames from the read end of a doorbell, across reads that split them anywhere."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = b""
        self.closed = False

    def read(self) -> list[bytes]:
        """The whole frames waiting (without blocking). Sets ``closed`` when the writer has gone (and
        returns what came before) or when a length is impossible (a peer not speaking this protocol); a
        writer that has not come yet is not gone."""
        if self.closed:
            return []
        data = b""
        for _ in range(READS):                  # a peer that never stops writing does not keep us here
            try:
                chunk = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:     # no writer: gone (the pipe hung up), or none has opened its end yet
                self.closed = _hung_up(self.fd)
                break
            data += chunk
        return self.feed(data)

    def feed(self, data: bytes) -> list[bytes]:
        """The whole frames in ``data`` after what was left from before (kept for the next call)."""
        buf = self._buf + data
        out, pos = [], 0
        while len(buf) - pos >= _LEN.size:
            (n,) = _LEN.unpack_from(buf, pos)
            if n == 0 or _LEN.size + n > MAX_FRAME:
                self.closed = True
                buf, pos = b"", 0
                break
            if len(buf) - pos < _LEN.size + n:
                break
            out.append(buf[pos + _LEN.size:pos + _LEN.size + n])
            pos += _LEN.size + n
        self._buf = buf[pos:]
        return out
