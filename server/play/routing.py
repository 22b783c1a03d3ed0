"""What the game server keeps per request, worker and match group (``server.play.gameserver``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from server.play.match import MatchRunner


class RemotePolicy:
    """Stands for an agent that lives in the workers; the server never calls its ``act``."""

    def __init__(self, name: str):
        self.name = name

    def act(self, obs, mask):  # pragma: no cover - the server routes requests instead
        raise RuntimeError("a remote policy acts in a worker process")


@dataclass
class Request:
    group: int
    agent: int
    rows: np.ndarray
    seq: int
    seed: int
    worker: bytes | None = None
    offset: int = -1            # where its rows start in the server's shared ``rows`` array (-1: frames only)
    staged: bool = False        # its observations are in the shared request arrays (or need not be)


@dataclass
class Worker:
    ident: bytes
    agents: set
    last_seen: float
    ready: bool = False
    shm: bool = False           # on this host, with the server's shared arrays mapped (``meta["shm"]``)
    bell: bool = False          # it has its doorbell open (``meta["doorbell"]``, ``server.net.doorbell``)
    inflight: dict = field(default_factory=dict)   # seq -> Request


@dataclass
class Group:
    index: int
    runner: MatchRunner
    pending: set = field(default_factory=set)      # seqs not answered yet
    finished: bool = False
    asked: list = field(default_factory=list)      # this step's (agent, rows) requests
    asked_at: float = 0.0                          # when they went out
