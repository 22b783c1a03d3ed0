"""What a spectator costs the game server: agent-steps/s with and without one, measured in one run.

    python bench/spectator.py [--matches 4096] [--groups 2] [--steps 15] [--rounds 20] [--json]

The game server's step path without the sockets to workers: ``--groups`` batched games of battle
(random agents) stepped in turn by their ``MatchRunner``, and after each group step
``FramePublisher.publish`` (as ``GameServer._step_group`` does), with the spectators in other
processes. Each round measures ``--steps`` steps of every group in each of four states, one after
the other, so that the machine's load drifts across all of them alike:

    none        no publisher at all (the baseline)
    detached    a publisher nobody watches (before any spectator came, and after each of them
                subscribed and unsubscribed again: the states run in a rotated order each round)
    reading     a spectator subscribed to one match, reading every frame it gets (as ``arena watch``)
    stalled     a spectator subscribed to one match that never reads

It prints agent-steps/s of each state (all rounds together), the ratio to ``none`` (whole run and
median of the rounds), the CPU time of the server's thread inside ``publish`` as a share of the run
(the publisher's own cost, apart from the machine's noise), and the positions the reading spectator got. The bar: every ratio >= 0.95.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("GOMP_SPINCOUNT", "10000")   # as server.cli sets it, before numba loads

STATES = ("none", "detached", "reading", "stalled")


# -- the spectator processes ------------------------------------------------------------------------------
def spectator(mode: str, endpoint: str) -> None:
    """A spectator in a process of its own, driven by lines on stdin: ``on``, ``off``, ``count``, ``quit``."""
    import threading

    import zmq

    from server.spectator.publisher import HELLO_TOPIC
    from server.spectator.watch import WatchClient

    client = WatchClient(endpoint)
    client.sock.setsockopt(zmq.UNSUBSCRIBE, HELLO_TOPIC)
    frames, lock, on = [0], threading.Lock(), [False]
    commands: list[str] = []

    def read_stdin() -> None:
        for line in sys.stdin:
            with lock:
                commands.append(line.strip())

    threading.Thread(target=read_stdin, daemon=True).start()
    while True:
        with lock:
            todo, commands[:] = list(commands), []
        for c in todo:
            if c == "on" and not on[0]:
                client.select(0, 0)
                on[0] = True
            elif c == "off" and on[0]:
                client.sock.setsockopt(zmq.UNSUBSCRIBE, client.topic)
                client.topic = None
                on[0] = False
            elif c == "count":
                print(frames[0], flush=True)
            elif c == "quit":
                client.close()
                return
        if mode == "reading" and on[0]:
            frames[0] += sum(len(f) for _, f in client.receive(100))
        else:
            time.sleep(0.05)


class Spectator:
    def __init__(self, mode: str, endpoint: str):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--spectator", mode, endpoint],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def count(self) -> int:
        self.send("count")
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# -- the measurement -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matches", type=int, default=4096)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15, help="steps of every group per state and round")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--spectator", nargs=2, metavar=("MODE", "ENDPOINT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.spectator:
        return spectator(*a.spectator)

    import numba

    import arenas
    from agents import make_agent
    from server.play.match import MatchRunner
    from server.spectator.publisher import FramePublisher

    sizes = [a.matches // a.groups + (1 if g < a.matches % a.groups else 0) for g in range(a.groups)]
    runners = []
    for g, n in enumerate(sizes):
        game = arenas.make("battle", num_matches=n)
        runner = MatchRunner(game, [make_agent("random", game, seed=g), make_agent("random", game, seed=g + 7)],
                             ["random", "random#2"])
        runner.reset(g)
        runner.stop_rule(steps=10**9)
        runners.append(runner)
    tmp = tempfile.mkdtemp(prefix="arena-bench-spectator-")
    pub = FramePublisher(f"ipc://{tmp}/spectate", "battle", runners)
    reader, stalled = Spectator("reading", pub.endpoint), Spectator("stalled", pub.endpoint)

    def settle(want_views: int) -> None:
        deadline = time.monotonic() + 5
        while len(pub.views[0]) != want_views and time.monotonic() < deadline:
            pub.poll()
            time.sleep(0.005)
        if len(pub.views[0]) != want_views:
            sys.exit(f"spectators did not (un)subscribe: {len(pub.views[0])} views, wanted {want_views}")

    def measure(publish: bool, warm: int = 3) -> tuple[float, int, float]:
        """Seconds, agent-steps, and CPU seconds of this thread inside ``publish`` (its own cost: not
        counting the time the thread waited for a core on a busy machine)."""
        for _ in range(warm):        # untimed: the threads wake up after the pause to (un)subscribe
            for g, r in enumerate(runners):
                r.account(r.step())
                if publish:
                    pub.publish(g, r.game, r.steps)
        before = sum(r.agent_steps for r in runners)
        inside = 0.0
        t0 = time.perf_counter()
        for _ in range(a.steps):
            for g, r in enumerate(runners):
                r.account(r.step())
                if publish:
                    t1 = time.thread_time()
                    pub.publish(g, r.game, r.steps)
                    inside += time.thread_time() - t1
        return time.perf_counter() - t0, sum(r.agent_steps for r in runners) - before, inside

    for _ in range(3):   # compile / cache load and first touches
        measure(True)
    seconds = {s: 0.0 for s in STATES}
    inside = {s: 0.0 for s in STATES}
    steps = {s: 0 for s in STATES}
    ratios: dict[str, list[float]] = {s: [] for s in STATES[1:]}
    try:
        for k in range(a.rounds):
            rates = {}
            for state in STATES[k % 4:] + STATES[:k % 4]:     # rotated each round: no state always first
                if state in ("reading", "stalled"):
                    (reader if state == "reading" else stalled).send("on")
                    settle(1)
                sec, n, pub_sec = measure(publish=state != "none")
                if state in ("reading", "stalled"):
                    (reader if state == "reading" else stalled).send("off")
                    settle(0)
                seconds[state] += sec
                inside[state] += pub_sec
                steps[state] += n
                rates[state] = n / sec
            for state in STATES[1:]:
                ratios[state].append(rates[state] / rates["none"])
        got = reader.count()
    finally:
        reader.close()
        stalled.close()
        pub.close()
    rate = {s: steps[s] / seconds[s] for s in STATES}
    figures = {"arena": "battle", "matches": a.matches, "groups": a.groups, "steps_per_state": a.steps,
               "rounds": a.rounds, "threads": numba.get_num_threads(),
               "agent_steps_per_s": {s: round(rate[s], 1) for s in STATES},
               "ratio_to_none": {s: round(rate[s] / rate["none"], 4) for s in STATES[1:]},
               "median_round_ratio": {s: round(statistics.median(r), 4) for s, r in ratios.items()},
               "publish_share": {s: round(inside[s] / seconds[s], 5) for s in STATES[1:]},
               "positions_read": got, "positions_sent": pub.positions_sent, "messages_sent": pub.messages_sent}
    print(f"battle, {a.matches} matches in {a.groups} groups, random agents, {figures['threads']} threads; "
          f"{a.rounds} rounds x {a.steps} steps of every group per state")
    for s in STATES:
        extra = "" if s == "none" else (f"   ratio {rate[s] / rate['none']:.3f} (median of rounds "
                                        f"{statistics.median(ratios[s]):.3f}); publish's own CPU time: "
                                        f"{100 * inside[s] / seconds[s]:.2f}% of the run")
        print(f"  {s:9s} {rate[s] / 1e6:7.2f} M agent-steps/s{extra}")
    print(f"  the reading spectator got {got} positions; the publisher sent {pub.positions_sent} "
          f"in {pub.messages_sent} messages")
    if a.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
