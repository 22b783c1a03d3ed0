"""The wire protocol: round trips, and any byte string either decodes to a valid message or raises ProtocolError
(never another exception, never a big allocation)."""
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from server.net.protocol import (ALIGN, DTYPES, MAGIC, MAX_NDIM, TYPES, VERSION, Message, ProtocolError, decode,
                                 encode, packed, packed_buffer)

names = st.text(min_size=1, max_size=8)
arrays = st.sampled_from(sorted(DTYPES)).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
meta_values = st.one_of(st.integers(-2**63, 2**63 - 1), st.booleans(), st.text(max_size=10), st.none(),
                        st.floats(allow_nan=False), st.lists(st.integers(0, 100), max_size=4))
messages = st.builds(
    Message,
    type=st.sampled_from(sorted(TYPES)),
    seq=st.integers(0, 2**63 - 1),
    sender=st.text(max_size=12),
    policy_version=st.integers(0, 2**31),
    arrays=st.dictionaries(names, arrays, max_size=4),
    meta=st.dictionaries(st.text(max_size=6), meta_values, max_size=4),
)


def _bytes(frames):
    return [bytes(f) for f in frames]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_round_trip(msg):
    out = decode(_bytes(encode(msg)))
    assert (out.type, out.seq, out.sender, out.policy_version) == (msg.type, msg.seq, msg.sender, msg.policy_version)
    assert out.meta == msg.meta
    assert list(out.arrays) == list(msg.arrays)
    for k, a in msg.arrays.items():
        b = out.arrays[k]
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_random_bytes_decode_or_raise_protocol_error(frames):
    try:
        msg = decode(frames)
    except ProtocolError:
        return
    assert msg.type in TYPES  # decoding succeeded: it must then be a well-formed message


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_corrupted_messages_decode_or_raise(msg, data):
    frames = [bytearray(f) for f in _bytes(encode(msg))]
    i = data.draw(st.integers(0, len(frames) - 1))
    if frames[i]:
        j = data.draw(st.integers(0, len(frames[i]) - 1))
        frames[i][j] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        frames = frames[: data.draw(st.integers(0, len(frames)))]
    try:
        decode([bytes(f) for f in frames])
    except ProtocolError:
        pass


def header(**over):
    h = {"magic": MAGIC, "v": VERSION, "type": "act", "seq": 1, "from": "x", "pv": 0, "meta": {},
         "arrays": [["obs", "uint8", [2, 3], 0]]}
    h.update(over)
    return msgpack.packb(h)


@pytest.mark.parametrize("frames, why", [
    ([header(magic="NOPE"), b"\0" * 6], "bad magic"),
    ([header(v=VERSION + 1), b"\0" * 6], "protocol version"),
    ([header(v=1), b"\0" * 6], "protocol version 1"),                     # the one-frame-per-array format
    ([header(type="exec"), b"\0" * 6], "unknown message type"),
    ([header(arrays=[["obs", "object", [2], 0]]), b"\0" * 16], "not allowed"),
    ([header(arrays=[["obs", "|O", [2], 0]]), b"\0" * 16], "not allowed"),
    ([header(arrays=[["obs", "uint8", [2]]]), b"\0" * 2], r"\[name, dtype, shape, offset\]"),
    ([header(), b"\0" * 5], "runs past"),
    ([header(), b"\0" * 7], "arrays need 6"),
    ([header()], "0 data frames for 1"),
    ([header(arrays=[]), b""], "1 data frames for 0"),
    ([header(), b"\0" * 6, b"extra"], "at most 2"),
    ([header(arrays=[["b", "bool", [2], 0]]), b"\x00\x07"], "0 or 1"),
    ([header(seq="1"), b"\0" * 6], "integers"),
    ([header(arrays=[["a", "uint8", [2], 0], ["b", "uint8", [2], 2]]), b"\0" * 66], "offset 2"),
    ([header(arrays=[["a", "uint8", [2], 0], ["a", "uint8", [2], 64]]), b"\0" * 66], "twice"),
    ([header(arrays=[["", "uint8", [2], 0]]), b"\0" * 2], "names must be"),
    ([header(arrays=[["a", "uint8", [-1], 0]]), b""], "bad shape"),
    ([header(arrays=[["a", "uint8", [True], 0]]), b"\0"], "bad shape"),
    ([b"\xc1garbage"], "not valid msgpack"),
    ([msgpack.packb([1, 2])], "map"),
    ([msgpack.packb(msgpack.ExtType(1, b"x"))], "extension"),
    ([], "empty"),
    ([header(), "not bytes"], "contiguous bytes"),
])
def test_each_bad_message_names_its_fault(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


# -- sizes: Python integers, bounded before anything is allocated ------------------------------------
@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**32, 2**32, 0], [0, 2**62], [2**16] * 4, [2**63, 2]])
def test_shapes_that_would_wrap_or_explode_are_refused(shape):
    """[2**32, 2**32] wraps to 0 in int64 (the ~70-byte message that killed a server with ValueError);
    an empty array whose other sides are huge would make numpy raise: all are one ProtocolError."""
    for data in ([b""], [b"\0" * 8]):
        with pytest.raises(ProtocolError, match="exceeds the cap|bad shape"):
            decode([header(arrays=[["obs", "uint8", shape, 0]]), *data])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=MAX_NDIM + 1), st.sampled_from(sorted(DTYPES)),
       st.binary(max_size=64), st.integers(-2**63, 2**64 - 1))
def test_any_shape_decodes_or_raises_protocol_error(shape, dtype, data, offset):
    try:
        msg = decode([header(arrays=[["x", dtype, shape, offset]]), data], max_bytes=1 << 20)
    except ProtocolError:
        return
    arr = msg.arrays["x"]
    assert list(arr.shape) == shape and arr.nbytes == len(data)


def test_size_cap():
    msg = Message("act", arrays={"obs": np.zeros(1000, np.uint8)})
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decode(_bytes(encode(msg)), max_bytes=500)


def test_a_shape_beyond_the_cap_is_refused_before_the_data_is_looked_at():
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decode([header(arrays=[["obs", "float64", [1000, 1000], 0]]), b""], max_bytes=1 << 20)


@settings(max_examples=100, deadline=None)
@given(messages, st.integers(3, 40))
def test_too_many_frames_are_refused_first(msg, n):
    """However valid the frames, a message of more than a header and a data frame is refused, and the
    count is checked before anything else (even a garbage header)."""
    frames = _bytes(encode(msg))
    with pytest.raises(ProtocolError, match=f"{n} frames"):
        decode((frames + [b"\0" * 8] * n)[:n])
    with pytest.raises(ProtocolError, match=f"{n} frames"):
        decode([b"\xc1"] * n)


def test_oversize_total_is_refused_before_the_header_is_parsed():
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decode([b"\xc1" * 10, b"\0" * 2000], max_bytes=1000)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), st.just(header()),
                          st.builds(lambda a: header(arrays=a), st.lists(st.lists(
                              st.one_of(st.integers(-5, 2**64 - 1), st.text(max_size=4), st.lists(st.integers(-1, 2**40), max_size=4)),
                              max_size=5), max_size=3))),
                min_size=0, max_size=5))
def test_garbage_and_half_valid_frames_decode_or_raise(frames):
    try:
        msg = decode(frames)
    except ProtocolError:
        return
    assert msg.type in TYPES


# -- the one data frame -------------------------------------------------------------------------------
def test_all_arrays_travel_in_one_data_frame_at_aligned_offsets():
    frames = encode(Message("act", arrays={"obs": np.ones((3, 5), np.uint8), "mask": np.ones((3, 2), bool),
                                           "empty": np.zeros((0, 4), np.float32), "v": np.arange(3.0)}))
    assert len(frames) == 2
    specs = msgpack.unpackb(frames[0])["arrays"]
    assert [s[3] for s in specs] == [0, ALIGN, 2 * ALIGN, 2 * ALIGN]
    data = bytes(frames[1])
    assert len(data) == 2 * ALIGN + 24 and data[15:ALIGN] == b"\0" * (ALIGN - 15)   # zero padding
    assert len(encode(Message("bye"))) == 1


def test_encode_is_zero_copy_for_one_array():
    a = np.arange(12, dtype=np.int64)
    frames = encode(Message("actions", arrays={"actions": a}))
    a[0] = 99
    assert np.frombuffer(frames[1], dtype=np.int64)[0] == 99


def test_packed_arrays_are_sent_without_a_copy_and_others_are_copied():
    views = packed({"obs": (np.uint8, (4, 3)), "mask": (np.bool_, (4, 2))})
    views["obs"][:] = 7
    views["mask"][:] = True
    frames = encode(Message("act", arrays=views))
    views["obs"][0, 0] = 9                             # the frame is the buffer itself
    got = decode(_bytes(frames))
    assert got.arrays["obs"][0, 0] == 9 and got.arrays["mask"].all()
    # the same buffer, fewer rows: still in place
    small = packed({"obs": (np.uint8, (2, 3)), "mask": (np.bool_, (2, 2))}, _root(views["obs"]))
    assert np.shares_memory(np.frombuffer(encode(Message("act", arrays=small))[1], np.uint8), views["obs"])
    # arrays of a buffer not made by packed_buffer, or out of their places, are copied
    a, b = np.zeros(12, np.uint8), np.zeros(8, bool)
    frames = encode(Message("act", arrays={"obs": a, "mask": b}))
    a[0] = 5
    assert decode(_bytes(frames)).arrays["obs"][0] == 0
    with pytest.raises(ValueError):
        packed({"obs": (np.uint8, (100, 3))}, packed_buffer(10))
    with pytest.raises(ValueError):
        packed({"obs": (np.uint8, (1,))}, np.zeros(10, np.uint8))


def _root(arr):
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def test_zmq_frames_decode_to_views_of_the_frame():
    import zmq

    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://protocol-test")
    b.connect("inproc://protocol-test")
    try:
        a.send_multipart(encode(Message("act", arrays={"obs": np.arange(100, dtype=np.uint8).reshape(10, 10),
                                                      "mask": np.ones((10, 3), bool)})), copy=False)
        frames = b.recv_multipart(copy=False)
        msg = decode(frames)
        assert msg.arrays["obs"][3, 4] == 34 and msg.arrays["mask"].all()
        assert np.shares_memory(msg.arrays["obs"], np.frombuffer(frames[1].buffer, np.uint8))
    finally:
        a.close(0)
        b.close(0)
