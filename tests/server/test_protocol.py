"""The wire protocol: round trips, and any byte string either decodes to a valid message or raises."""
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from server.net.protocol import DTYPES, MAGIC, VERSION, Message, ProtocolError, decode, encode, TYPES

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
         "arrays": [["obs", "uint8", [2, 3]]]}
    h.update(over)
    return msgpack.packb(h)


@pytest.mark.parametrize("frames, why", [
    ([header(magic="NOPE"), b"\0" * 6], "bad magic"),
    ([header(v=VERSION + 1), b"\0" * 6], "protocol version"),
    ([header(type="exec"), b"\0" * 6], "unknown message type"),
    ([header(arrays=[["obs", "object", [2]]]), b"\0" * 16], "not allowed"),
    ([header(arrays=[["obs", "|O", [2]]]), b"\0" * 16], "not allowed"),
    ([header(), b"\0" * 5], "needs 6"),
    ([header()], "0 array frames for 1"),
    ([header(), b"\0" * 6, b"extra"], "2 array frames"),
    ([header(arrays=[["b", "bool", [2]]]), b"\x00\x07"], "0 or 1"),
    ([header(seq="1"), b"\0" * 6], "integers"),
    ([b"\xc1garbage"], "not valid msgpack"),
    ([msgpack.packb([1, 2])], "map"),
    ([msgpack.packb(msgpack.ExtType(1, b"x"))], "extension"),
])
def test_each_bad_message_names_its_fault(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


def test_size_cap():
    msg = Message("act", arrays={"obs": np.zeros(1000, np.uint8)})
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decode(_bytes(encode(msg)), max_bytes=500)


def test_encode_is_zero_copy_for_contiguous_arrays():
    a = np.arange(12, dtype=np.int64)
    frames = encode(Message("actions", arrays={"actions": a}))
    a[0] = 99
    assert np.frombuffer(frames[1], dtype=np.int64)[0] == 99
