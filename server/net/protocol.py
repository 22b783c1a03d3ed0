"""The wire protocol: one msgpack header frame, then one raw frame per array. Nothing is ever pickled.

Every message on every socket of the platform is::

    frame 0   msgpack map  {"magic": "ARNA", "v": VERSION, "type": str, "seq": int, "from": str,
                            "pv": int, "meta": {str: scalar or short list},
                            "arrays": [[name, dtype, shape], ...]}
    frame 1.. the raw bytes of each array, C order, in the order of "arrays"

``encode`` returns the frames (arrays as zero-copy memoryviews, for ``send_multipart(copy=False)``);
``decode`` validates everything before use and raises one ``ProtocolError`` otherwise: magic, version,
message type, the header's types, the frame count, an allowed dtype (plain numbers and bool only, never
``object``), each frame's byte length against its dtype and shape, and a size cap. Decoded arrays are
views of the received frames (no copy; read-only when the frame is, as zmq frames are).

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
``segments`` ``obs``, ``mask``, ``actions``, training: a rollout worker's segments for its learner (``server.learn``);
             ``logp``, ``rewards``,    ``{"worker", "steps", "agent_steps", "decisions", "opponents", "results"}``
             ``dones``, ``valid``,
             ``version``
``bye``      -                        ``{}``: an orderly goodbye
============ ======================== ======================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack
import numpy as np

MAGIC = "ARNA"
VERSION = 1
#: the largest message accepted, all frames together (a 4096 x 64-agent battle batch is ~50 MB)
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 32
MAX_NDIM = 8
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


def encode(msg: Message) -> list:
    """Frames for ``send_multipart(frames, copy=False)``; arrays are not copied when contiguous."""
    if msg.type not in TYPES:
        raise ProtocolError(f"unknown message type {msg.type!r}")
    specs, frames = [], []
    for name, arr in msg.arrays.items():
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        if arr.dtype.name not in DTYPES:
            raise ProtocolError(f"array {name!r} has dtype {arr.dtype}, not one of the allowed dtypes")
        specs.append([name, arr.dtype.name, list(arr.shape)])
        frames.append(memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b"")
    header = msgpack.packb({"magic": MAGIC, "v": VERSION, "type": msg.type, "seq": int(msg.seq),
                            "from": msg.sender, "pv": int(msg.policy_version), "meta": msg.meta,
                            "arrays": specs}, use_bin_type=True)
    return [header, *frames]


def _nbytes(frame) -> int:
    return frame.nbytes if isinstance(frame, memoryview) else len(frame)


def _buffer(frame):
    """The bytes of a frame: zmq.Frame (``.buffer``), bytes, bytearray or memoryview."""
    buf = getattr(frame, "buffer", frame)
    return buf if isinstance(buf, memoryview) else memoryview(buf)


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


def decode(frames: Sequence, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Validate and decode received frames; raises ``ProtocolError`` on anything off."""
    if not frames:
        raise ProtocolError("empty message")
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
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(pv, int) or isinstance(pv, bool):
        raise ProtocolError("header fields 'seq' and 'pv' must be integers")
    if not isinstance(sender, str):
        raise ProtocolError("header field 'from' must be a string")
    meta = _check_meta(header.get("meta", {}))
    specs = header.get("arrays")
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError(f"header field 'arrays' must be a list of at most {MAX_ARRAYS} entries")
    if len(bufs) != 1 + len(specs):
        raise ProtocolError(f"{len(bufs) - 1} array frames for {len(specs)} arrays in the header")
    arrays: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, bufs[1:]):
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
                and isinstance(spec[1], str) and isinstance(spec[2], list)):
            raise ProtocolError("each array entry must be [name, dtype, shape]")
        name, dtype, shape = spec
        if dtype not in DTYPES:
            raise ProtocolError(f"array {name!r}: dtype {dtype!r} is not allowed")
        if len(shape) > MAX_NDIM or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                                            for d in shape):
            raise ProtocolError(f"array {name!r}: bad shape {shape!r}")
        if name in arrays:
            raise ProtocolError(f"array {name!r} appears twice")
        dt = np.dtype(dtype)
        expected = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        if expected != buf.nbytes:
            raise ProtocolError(f"array {name!r}: frame has {buf.nbytes} bytes, {dtype}{shape} needs {expected}")
        arr = np.frombuffer(buf, dtype=dt).reshape(shape) if expected else np.zeros(shape, dt)
        if dt == np.bool_ and expected and arr.view(np.uint8).max() > 1:
            raise ProtocolError(f"array {name!r}: bool bytes must be 0 or 1")
        arrays[name] = arr
    return Message(type=mtype, seq=seq, sender=sender, policy_version=pv, arrays=arrays, meta=meta)
