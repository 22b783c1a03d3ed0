"""Answers with garbage: finds its process's ZeroMQ socket and sends frames that are no message."""
import gc

import numpy as np
import zmq


class Evil:
    def __init__(self, game=None, seed=0):
        self.calls = 0

    def act(self, obs, mask):
        self.calls += 1
        if self.calls == 2:
            for obj in gc.get_objects():
                if isinstance(obj, zmq.Socket) and not obj.closed:
                    obj.send_multipart([b"\x92\xff" * 20, b"\x00" * 7])
                    obj.send_multipart([b"not msgpack at all"])
        return np.argmax(mask, axis=1)
