"""Doorbells (``server.net.doorbell``): frames over real named pipes, split anywhere by the reader's reads;
a full pipe, a reader gone, an impossible length, and something that is not a FIFO of ours."""
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from server.net import doorbell
from server.net.protocol import Message, decode, encode


@pytest.fixture
def fifo(tmp_path):
    """A FIFO with its read end open (no blocking), and a function that opens its write end."""
    req, _ = doorbell.make_pair(str(tmp_path), "w0", 1)
    path = str(tmp_path / req)
    rfd = doorbell.open_fifo(path, write=False)
    opened = [rfd]

    def writer():
        fd = doorbell.open_fifo(path, write=True)
        opened.append(fd)
        return fd
    yield path, rfd, writer
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


headers = st.lists(st.binary(min_size=1, max_size=doorbell.MAX_HEADER), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(headers, st.lists(st.integers(1, 5000), min_size=1, max_size=8))
def test_frames_come_out_whole_however_the_bytes_are_split(frames, cuts):
    data = b"".join(doorbell.frame(h) for h in frames)
    reader = doorbell.Reader(-1)
    got, pos = [], 0
    for cut in cuts + [len(data)]:
        got += reader.feed(data[pos:pos + cut])
        pos += cut
    assert got == frames and not reader.closed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_is_frames_or_closes_the_doorbell_never_an_exception(data):
    reader = doorbell.Reader(-1)
    for raw in reader.feed(data):
        assert 0 < len(raw) <= doorbell.MAX_HEADER


@pytest.mark.parametrize("length", [0, doorbell.MAX_FRAME, 2**32 - 1])
def test_an_impossible_length_closes_the_reader(length):
    reader = doorbell.Reader(-1)
    assert reader.feed(struct.pack("<I", length) + b"x" * 16) == [] and reader.closed


def test_a_header_too_big_for_one_atomic_write_is_refused():
    with pytest.raises(ValueError, match="at most"):
        doorbell.frame(b"x" * (doorbell.MAX_HEADER + 1))


def test_protocol_headers_go_through_a_fifo(fifo):
    path, rfd, writer = fifo
    wfd = writer()
    msgs = [Message("act", seq=i, sender="server", meta={"agent": "random", "shm": [i, 7]}) for i in range(5)]
    assert doorbell.write(wfd, [doorbell.frame(encode(m)[0]) for m in msgs]) == 5
    got = [decode([raw]) for raw in doorbell.Reader(rfd).read()]
    assert [(m.seq, m.meta["shm"]) for m in got] == [(i, [i, 7]) for i in range(5)]


def test_a_full_pipe_takes_what_it_can_and_says_how_many(fifo):
    path, rfd, writer = fifo
    wfd = writer()
    one = doorbell.frame(b"x" * 1000)
    sent = doorbell.write(wfd, [one] * 500)           # 500 KB into a 64 KB pipe nobody reads
    assert 0 < sent < 500
    frames = doorbell.Reader(rfd).read()
    assert len(frames) >= 1 and all(f == b"x" * 1000 for f in frames), "whole frames only, never half of one"


def test_the_reader_sees_the_writer_go_and_the_writer_sees_the_reader_go(fifo):
    path, rfd, writer = fifo
    wfd = writer()
    doorbell.write(wfd, [doorbell.frame(b"last")])
    os.close(wfd)
    reader = doorbell.Reader(rfd)
    assert reader.read() == [b"last"] and reader.closed
    wfd = writer()
    os.close(rfd)
    with pytest.raises(BrokenPipeError):
        doorbell.write(wfd, [doorbell.frame(b"nobody")])


def test_a_writer_cannot_open_before_a_reader(tmp_path):
    req, _ = doorbell.make_pair(str(tmp_path), "w1", 1)
    with pytest.raises(doorbell.DoorbellError):
        doorbell.open_fifo(str(tmp_path / req), write=True)


def test_a_regular_file_or_a_link_is_not_a_doorbell(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(doorbell.DoorbellError, match="not a FIFO"):
        doorbell.open_fifo(str(tmp_path / "plain"), write=False)
    req, _ = doorbell.make_pair(str(tmp_path), "w2", 1)
    os.symlink(tmp_path / req, tmp_path / "link")
    with pytest.raises(doorbell.DoorbellError):
        doorbell.open_fifo(str(tmp_path / "link"), write=False)
    assert oct(os.stat(tmp_path / req).st_mode & 0o777) == "0o600"


def test_a_reader_before_any_writer_is_not_closed(fifo):
    path, rfd, writer = fifo
    reader = doorbell.Reader(rfd)
    assert reader.read() == [] and not reader.closed, "nobody has written yet: that is not a hang-up"
    wfd = writer()
    doorbell.write(wfd, [doorbell.frame(b"first")])
    assert reader.read() == [b"first"] and not reader.closed
