"""What ``arena train`` shows and keeps: the watcher of the learners' PUB sockets, win rates, curves."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import zmq

from server.net.endpoints import subscriber
from server.net.protocol import ProtocolError, waiting

from .gossip import consensus_distance

CSV_FIELDS = ["minutes", "learner", "version", "agent_steps", "agent_steps_per_s", "updates_per_s",
              "mean_lag", "pg_loss", "v_loss", "entropy", "approx_kl", "consensus_distance",
              "win_random", "win_greedy", "dropped_segments", "gossip_exchanges", "gossip_timeouts",
              "workers_alive"]


class Watcher:
    """Subscribes to the learners' PUB sockets: their stats and parameters (for the consensus distance)."""

    def __init__(self, endpoints: dict[str, str], keys_dir: str | None = None):
        self.ctx = zmq.Context()
        self.sub = subscriber(self.ctx, list(endpoints.values()), keys_dir)
        self.bad_messages = 0
        self.stats: dict[str, dict] = {}
        self.params: dict[str, np.ndarray] = {}
        self.layouts: dict[str, dict] = {}      # learner -> the net and version of its last parameters
        self.heard: dict[str, float] = {}       # learner -> when its last message arrived

    def _bad(self, exc: ProtocolError) -> None:
        self.bad_messages += 1

    def poll(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not self.sub.poll(max(0, int(left * 1000))):
                return
            for msg in waiting(self.sub, on_bad=self._bad):
                name = str(msg.meta.get("learner", msg.sender))
                self.heard[name] = time.monotonic()
                if msg.type == "stats":
                    self.stats[name] = dict(msg.meta)
                elif msg.type == "params" and "params" in msg.arrays:
                    self.params[name] = msg.arrays["params"]     # a view of the received frame, no copy
                    self.layouts[name] = {k: msg.meta.get(k) for k in ("arch", "hidden", "channels", "version")}

    def forget(self, name: str) -> None:
        """Drop what a learner said (it was restarted, say)."""
        for d in (self.stats, self.params, self.heard, self.layouts):
            d.pop(name, None)

    def consensus(self, fresh: float = 3.0) -> float | None:
        """The consensus distance of the learners heard from in the last ``fresh`` seconds (a dead
        learner's last parameters would otherwise count forever)."""
        now = time.monotonic()
        vecs = [v for n, v in self.params.items() if now - self.heard.get(n, -1e9) <= fresh]
        if len(vecs) < 2 or len({v.size for v in vecs}) != 1:
            return None
        return consensus_distance(vecs)

    def close(self) -> None:
        self.sub.close(linger=0)
        self.ctx.term()


def _win_rates(meta: dict, prev: dict | None) -> dict[str, float]:
    """Win rate per opponent over the training games since ``prev`` (sampling policy, seats alternating)."""
    def table(m):
        names, res = m.get("opponents", []), m.get("results", [])
        return {k: np.array(res[3 * j:3 * j + 3], dtype=np.int64) for j, k in enumerate(names)}
    now, before = table(meta), table(prev or {})
    out = {}
    for k, v in now.items():
        d = v - before.get(k, 0)
        if d.sum() > 0:
            out[k] = float(d[0] / d.sum())
    return out


def plot_curves(csv_path: Path, png_path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [("win rate in training games", ["win_random", "win_greedy"], axes[0, 0], False),
              ("agent-steps/s", ["agent_steps_per_s"], axes[0, 1], False),
              ("loss / entropy", ["pg_loss", "v_loss", "entropy"], axes[1, 0], False),
              ("consensus distance", ["consensus_distance"], axes[1, 1], True)]
    learners = sorted({r["learner"] for r in rows})
    for label, keys, ax, log in panels:
        for name in learners:
            sub = [r for r in rows if r["learner"] == name]
            x = [float(r["minutes"]) for r in sub]
            for key in keys:
                y = [float(r[key]) if r[key] not in ("", None) else np.nan for r in sub]
                if keys == ["consensus_distance"]:
                    if name != learners[0]:
                        continue                 # one value for all learners, written on each row
                    ax.plot(x, y, label=f"all {len(learners)} learners")
                    continue
                ax.plot(x, y, label=f"{name} {key}" if len(learners) > 1 or len(keys) > 1 else key)
        ax.set_title(label)
        ax.set_xlabel("minutes")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
