"""The rollout worker: plays its learner's seats with the newest parameters it has and pushes segments.

A child of its learner (``python -m server.learn.rollout CONFIG ...``); see ``server.learn.learner``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import zmq

from server.net.proc import stop_flag
from server.net.protocol import Message, ProtocolError, decode, encode

from .config import TrainConfig, config_from_dict
from .selfplay import Trainer

#: messages queued on each side of a worker's PUSH/PULL link: a worker runs at most this far ahead of its
#: learner, so segments wait in queues for at most a few updates (the lag limit is PPOConfig.max_lag)
HWM = 1
#: seconds between a learner's stats messages (and re-publications of its parameters, for late subscribers)
STATS_EVERY = 1.0
#: messages a PUB socket keeps per subscriber (parameters: only the newest matters)
PUB_HWM = 4


class RolloutWorker:
    """Plays the learner's seats with the newest parameters it has and pushes segments to it."""

    def __init__(self, cfg: TrainConfig, name: str, segments_endpoint: str, params_endpoint: str,
                 chunk: int, seed: int):
        self.name = name
        self.trainer = Trainer(replace(cfg, seed=seed, batch_segments=chunk))
        self.params = self.trainer.params
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, HWM)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(segments_endpoint)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.RCVHWM, PUB_HWM)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(params_endpoint)
        self.seq = 0
        self.refreshes = 0
        self.stop = [False]
        self.parent = os.getppid()

    def _orphaned(self) -> bool:
        return os.getppid() != self.parent

    def _refresh(self, wait: float = 0.0) -> bool:
        """Load the newest ``params`` waiting on the PUB socket if its version moved (waiting up to
        ``wait`` seconds for one). Returns whether parameters were loaded."""
        newest = None
        deadline = time.monotonic() + wait
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if newest is None else 0.0
            if not self.sub.poll(int(timeout * 1000)):
                break
            try:
                msg = decode(self.sub.recv_multipart(copy=False))
            except ProtocolError:
                continue
            if msg.type == "params":
                newest = msg
        if newest is None:
            return False
        version = int(newest.meta.get("version", -1))
        vec = newest.arrays.get("params")
        if vec is None or vec.dtype != np.float32 or vec.shape != (self.params.size,):
            return False
        if version == self.trainer.version and self.refreshes:
            return False
        self.params.write(np.array(vec))
        self.params.sync(changed=True)
        self.trainer.version = version
        self.refreshes += 1
        return True

    def _message(self) -> Message:
        tr, b = self.trainer, self.trainer.batch
        n = b.size
        arrays = {"obs": b.obs[:n], "mask": b.mask[:n], "actions": b.actions[:n], "logp": b.logp[:n],
                  "rewards": b.rewards[:n], "dones": b.dones[:n], "valid": b.valid[:n], "version": b.version[:n]}
        meta = {"worker": self.name, "steps": tr.steps, "agent_steps": tr.agent_steps,
                "decisions": tr.decisions, "opponents": list(tr.opponent_names),
                "results": [int(x) for x in tr.results.reshape(-1)]}
        self.seq += 1
        return Message("segments", seq=self.seq, sender=self.name, policy_version=tr.version,
                       arrays=arrays, meta=meta)

    def run(self) -> int:
        self.stop = stop_flag()
        deadline = time.monotonic() + 60.0
        while not self._refresh(wait=0.5):
            if self.stop[0] or self._orphaned():
                return 0
            if time.monotonic() > deadline:
                print(f"rollout worker {self.name}: no parameters from the learner within 60 s", file=sys.stderr)
                return 1
        tr = self.trainer
        while not self.stop[0] and not self._orphaned():
            self._refresh()
            tr.collect()
            frames = encode(self._message())
            # counters travel as totals since the last message, so a dropped message loses only its own
            tr.steps = tr.agent_steps = tr.decisions = 0
            tr.results[:] = 0
            while not self.stop[0] and not self._orphaned():
                if self.push.poll(200, zmq.POLLOUT):
                    self.push.send_multipart(frames, copy=True)
                    break
            tr.batch.clear()
        return 0

    def close(self) -> None:
        self.push.close(linger=0)
        self.sub.close(linger=0)
        self.ctx.term()


# -- python -m server.learn.rollout ... (started by a learner) ---------------------------------------
def _worker_main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m server.learn.rollout")
    ap.add_argument("config")
    ap.add_argument("--name", required=True)
    ap.add_argument("--segments", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--chunk", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config_from_dict(json.loads(Path(args.config).read_text()))
    worker = RolloutWorker(cfg, args.name, args.segments, args.params, args.chunk, args.seed)
    try:
        return worker.run()
    finally:
        worker.close()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
