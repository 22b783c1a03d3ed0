"""The wire protocol: one msgpack header frame, then one data frame holding every array. Nothing is ever pickled.

Every message on every socket of the platform is::

    frame 0   msgpack map  {"magic": "ARNA", "v": VERSION, "type": str, "seq": int, "from": str,
                            "pv": int, "meta": {str: scalar or short list},
                            "arrays": [[name, dtype, shape, offset], ...]}
    frame 1   the raw bytes of every array, C order, array i at byte ``offset`` (the running total of
              the arrays before it, rounded up to ``ALIGN``); zero padding between them. Present
              exactly when "arrays" is not empty.

At most two frames, so ``zmq.MAXMSGSIZE`` (which bounds one frame) set on a receiving socket bounds
every message a well-behaved peer can send it, and ``decode`` refuses a third frame before it looks at
anything else. (ZeroMQ itself buffers every frame of a multipart message before the first can be read,
however many there are: a peer that can connect may still make a receiver hold many frames of up to
MAXMSGSIZE each. CURVE keys off loopback and ipc endpoints in private folders are what keep strangers
from connecting at all.)

``encode`` returns the frames for ``send_multipart(copy=False)``. A message whose bytes lie in one
array (a parameter vector, an action batch) is sent as that array's memory, without a copy; so are
arrays made with ``packed`` (views at their wire offsets in one buffer, which is sent as it is); any
other set of arrays is copied once into a new data frame. ``decode`` validates everything before use
and raises one ``ProtocolError`` otherwise: the frame count and the total size first, then magic,
version, message type, the header's types, an allowed dtype (plain numbers and bool only, never
``object``), each shape (Python integers, every size bounded before anything is computed from it), each
offset, the data frame's length, and bool bytes. Decoded arrays are views of the received data frame
(no copy; read-only when the frame is).

Message types (``type``) and what they carry:

============ ======================== ======================================================
type         arrays                   meta
============ ======================== ======================================================
``hello``    -                        ``{"role": str, ...}``: a peer announces itself
``reset``    -                        ``{"seed": int}``: start of play
``act``      ``obs``, ``mask``        ask a policy for one action per row
``actions``  ``actions``              the reply to ``act``, same ``seq``
``match_start`` ``slots``             matches began in these batch slots (no reply)
``match_end`` ``slots``, ``outcomes``  matches ended: +1 won, 0 draw, -1 lost (no reply)
``error``    -                        ``{"error": str}``: the reply when acting failed, or a refused ``params`` (same ``seq``)
``heartbeat`` -                       liveness, both ways (a worker's carries its ``agents``)
``stats``    -                        the game server's figures, once a second on its PUB socket; a learner's
                                      (``server.learn``) likewise
``frame``    one match's state arrays   ``{"arena", "slot", "step", ...}``: for spectators
``params``   ``params`` (float32)     gossip: a learner offers its parameters ``{"learner", "version", "size", "layout"}``;
                                      the same message on a learner's PUB socket gives its workers a new version
``params_ack`` ``params`` (float32)   gossip: the peer's parameters before it averaged, same ``seq`` and meta keys
``segments`` ``obs``, ``mask``, ``actions``, training: the game server's segments for a learner (``server.play.feed``);
             ``logp``, ``rewards``,    ``{"worker", "steps", "agent_steps", "decisions", "opponents", "results"}``
             ``dones``, ``valid``,
             ``version``
``bye``      -                        ``{}``: an orderly goodbye
============ ======================== ======================================================
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import msgpack
import numpy as np

MAGIC = "ARNA"
#: 2: all arrays in one data frame (version 1 sent one frame per array)
VERSION = 2
#: the largest message accepted, all frames together (a 4096 x 64-agent battle batch is ~50 MB)
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
#: a header frame and a data frame
MAX_FRAMES = 2
MAX_ARRAYS = 32
MAX_NDIM = 8
MAX_NAME_CHARS = 64
#: arrays start at multiples of this many bytes in the data frame (a cache line)
ALIGN = 64
TYPES = frozenset({"hello", "reset", "act", "actions", "match_start", "match_end", "error", "heartbeat",
                   "bye", "stats", "frame", "params", "params_ack", "segments"})
#: the dtypes that may cross the wire; never object, never structured
DTYPES = frozenset({"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                    "float16", "float32", "float64"})
_META_SCALARS = (str, int, float, bool, type(None))


class ProtocolError(ValueError):
    """A message that is not a valid message of this protocol."""


@dataclass
class Message:
    type: str
    seq: int = 0
    sender: str = ""
    policy_version: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _no_ext(code, data):
    raise ProtocolError("msgpack extension types are not allowed")


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def layout(specs: Sequence[tuple[str, Any]]) -> tuple[list[int], int]:
    """``(offsets, total)`` of arrays of ``(dtype, shape)`` in a data frame, in this order."""
    offsets, end = [], 0
    for dtype, shape in specs:
        start = _aligned(end)
        offsets.append(start)
        end = start + np.dtype(dtype).itemsize * int(np.prod(shape, dtype=object))
    return offsets, end


#: buffers made by ``packed_buffer`` (by id): encode sends them as they are (their padding is ours: zeros)
_PACKED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def packed(specs: dict[str, tuple[Any, tuple[int, ...]]], buffer: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Arrays ``{name: (dtype, shape)}`` laid out as in a data frame, in one buffer; ``encode`` sends a
    message of exactly these arrays (same order) without copying them. ``buffer``: a uint8 array made by
    ``packed_buffer`` and big enough, reused (the views are new, the memory is not)."""
    offsets, total = layout(list(specs.values()))
    if buffer is None:
        buffer = packed_buffer(total)
    elif buffer.nbytes < total or _PACKED.get(id(buffer)) is not buffer:
        raise ValueError(f"packed: the buffer must come from packed_buffer and hold {total} bytes")
    out = {}
    for (name, (dtype, shape)), off in zip(specs.items(), offsets):
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        out[name] = buffer[off:off + dt.itemsize * n].view(dt).reshape(shape)
    return out


def packed_buffer(nbytes: int) -> np.ndarray:
    """A zeroed uint8 buffer for ``packed``."""
    buf = np.zeros(int(nbytes), dtype=np.uint8)
    _PACKED[id(buf)] = buf
    return buf


def _root(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def _in_place(arrays: list[tuple[int, np.ndarray]], total: int):
    """The data frame as a view, when the arrays already lie at their offsets in one ``packed`` buffer."""
    full = [(off, a) for off, a in arrays if a.nbytes]
    root = _root(full[0][1])
    if _PACKED.get(id(root)) is not root:
        return None
    base = _address(root)
    start = _address(full[0][1]) - base - full[0][0]
    if start < 0 or start + total > root.nbytes:
        return None
    for off, a in full:
        if _root(a) is not root or _address(a) - base != start + off:
            return None
    return memoryview(root)[start:start + total]


def _data_frame(arrays: list[tuple[int, np.ndarray]], total: int):
    full = [(off, a) for off, a in arrays if a.nbytes]
    if not full:
        return b""
    if len(full) == 1 and full[0][0] == 0 and full[0][1].nbytes == total:
        return memoryview(full[0][1].reshape(-1).view(np.uint8))      # one array: its own memory
    view = _in_place(arrays, total)
    if view is not None:
        return view
    data = np.empty(total, dtype=np.uint8)
    end = 0
    for off, a in full:
        data[end:off] = 0                                             # padding: never stale memory
        data[off:off + a.nbytes] = a.reshape(-1).view(np.uint8)
        end = off + a.nbytes
    return memoryview(data)


def encode(msg: Message) -> list:
    """Frames for ``send_multipart(frames, copy=False)``: the header, and the data frame when there are
    arrays (see the module docstring for when it is a copy)."""
    if msg.type not in TYPES:
        raise ProtocolError(f"unknown message type {msg.type!r}")
    specs, arrays, end = [], [], 0
    for name, arr in msg.arrays.items():
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        if arr.dtype.name not in DTYPES:
            raise ProtocolError(f"array {name!r} has dtype {arr.dtype}, not one of the allowed dtypes")
        off = _aligned(end)
        specs.append([name, arr.dtype.name, list(arr.shape), off])
        arrays.append((off, arr))
        end = off + arr.nbytes
    header = msgpack.packb({"magic": MAGIC, "v": VERSION, "type": msg.type, "seq": int(msg.seq),
                            "from": msg.sender, "pv": int(msg.policy_version), "meta": msg.meta,
                            "arrays": specs}, use_bin_type=True)
    return [header, _data_frame(arrays, end)] if specs else [header]


def _buffer(frame):
    """The bytes of a frame: zmq.Frame (``.buffer``), bytes, bytearray or memoryview."""
    buf = getattr(frame, "buffer", frame)
    try:
        view = buf if isinstance(buf, memoryview) else memoryview(buf)
        return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")
    except (TypeError, ValueError):
        raise ProtocolError(f"a frame must be contiguous bytes, not {type(frame).__name__}") from None


def _check_meta(meta: Any) -> dict:
    if not isinstance(meta, dict):
        raise ProtocolError("header field 'meta' must be a map")
    for k, v in meta.items():
        if not isinstance(k, str):
            raise ProtocolError("meta keys must be strings")
        vals = v if isinstance(v, list) else [v]
        if not all(isinstance(x, _META_SCALARS) for x in vals):
            raise ProtocolError(f"meta value for {k!r} must be a scalar or a list of scalars")
    return meta


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_spec(spec: Any, max_bytes: int) -> tuple[str, np.dtype, tuple[int, ...], int, int]:
    """``(name, dtype, shape, offset, nbytes)`` of one header entry; every size a bounded Python int."""
    if not (isinstance(spec, list) and len(spec) == 4 and isinstance(spec[0], str) and isinstance(spec[1], str)
            and isinstance(spec[2], list) and _int(spec[3])):
        raise ProtocolError("each array entry must be [name, dtype, shape, offset]")
    name, dtype, shape, offset = spec
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise ProtocolError(f"array names must be 1 to {MAX_NAME_CHARS} characters")
    if dtype not in DTYPES:
        raise ProtocolError(f"array {name!r}: dtype {dtype!r} is not allowed")
    if len(shape) > MAX_NDIM or not all(_int(d) and 0 <= d <= max_bytes for d in shape):
        raise ProtocolError(f"array {name!r}: bad shape {shape!r}")
    dt = np.dtype(dtype)
    # the element count and, for an empty array, the product of its other sides: Python integers,
    # stopped as soon as they pass the cap (so [2**32, 2**32] never wraps to 0)
    count, extent = 1, 1
    for d in shape:
        count *= d
        extent *= max(d, 1)
        if extent * dt.itemsize > max_bytes:
            raise ProtocolError(f"array {name!r}: shape {shape!r} exceeds the cap of {max_bytes} bytes")
    return name, dt, tuple(shape), offset, count * dt.itemsize


def decode(frames: Sequence, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Validate and decode received frames; raises ``ProtocolError`` (and nothing else) on anything off."""
    if not isinstance(frames, (list, tuple)) or not frames:
        raise ProtocolError("empty message")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError(f"{len(frames)} frames: a message has at most {MAX_FRAMES} (header and data)")
    bufs = [_buffer(f) for f in frames]
    total = sum(b.nbytes for b in bufs)
    if total > max_bytes:
        raise ProtocolError(f"message of {total} bytes exceeds the cap of {max_bytes}")
    if bufs[0].nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {bufs[0].nbytes} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(bufs[0], raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises several types for garbage; all mean the same here
        raise ProtocolError(f"header is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a msgpack map")
    if header.get("magic") != MAGIC:
        raise ProtocolError("bad magic: not an arena message")
    if header.get("v") != VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r} is not {VERSION}")
    mtype = header.get("type")
    if mtype not in TYPES:
        raise ProtocolError(f"unknown message type {mtype!r}")
    seq, sender, pv = header.get("seq"), header.get("from"), header.get("pv")
    if not _int(seq) or not _int(pv):
        raise ProtocolError("header fields 'seq' and 'pv' must be integers")
    if not isinstance(sender, str):
        raise ProtocolError("header field 'from' must be a string")
    meta = _check_meta(header.get("meta", {}))
    specs = header.get("arrays")
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError(f"header field 'arrays' must be a list of at most {MAX_ARRAYS} entries")
    if len(bufs) != (2 if specs else 1):
        raise ProtocolError(f"{len(bufs) - 1} data frames for {len(specs)} arrays in the header "
                            f"(one data frame when there are arrays, none otherwise)")
    arrays: dict[str, np.ndarray] = {}
    data = bufs[1] if specs else None
    end = 0
    for spec in specs:
        name, dt, shape, offset, nbytes = _check_spec(spec, max_bytes)
        if name in arrays:
            raise ProtocolError(f"array {name!r} appears twice")
        if offset != _aligned(end):
            raise ProtocolError(f"array {name!r}: offset {offset}, the layout puts it at {_aligned(end)}")
        end = offset + nbytes
        if end > data.nbytes:
            raise ProtocolError(f"array {name!r}: {dt.name}{list(shape)} at offset {offset} runs past the "
                                f"{data.nbytes}-byte data frame")
        arr = np.frombuffer(data, dtype=dt, count=nbytes // dt.itemsize, offset=offset).reshape(shape) \
            if nbytes else np.empty(shape, dt)
        if dt == np.bool_ and nbytes and arr.view(np.uint8).max() > 1:
            raise ProtocolError(f"array {name!r}: bool bytes must be 0 or 1")
        arrays[name] = arr
    if data is not None and data.nbytes != end:
        raise ProtocolError(f"data frame has {data.nbytes} bytes, the arrays need {end}")
    return Message(type=mtype, seq=seq, sender=sender, policy_version=pv, arrays=arrays, meta=meta)


def waiting(sock, max_bytes: int = MAX_MESSAGE_BYTES, on_bad: Callable[[ProtocolError], None] | None = None):
    """The messages waiting on a zmq socket, decoded, without blocking: a bad one is passed to ``on_bad``
    (counted by the caller) and skipped, never raised."""
    import zmq

    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        try:
            yield decode(frames, max_bytes=max_bytes)
        except ProtocolError as exc:
            if on_bad is not None:
                on_bad(exc)

