"""What running an agent in its own process costs: the same agent in-process and isolated, one run.

    python bench/isolation.py [--rounds 3] [--games 40000]

Runs ``arena run connect4 --matches 4096 --agents ./examples/centre_bot.py:CentreBot,random`` with
``--trust`` (in this process) and with ``--isolate`` (a process of its own, per-call deadline),
alternating, ``--rounds`` times each, and prints the median agent-steps/s of each and their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def once(mode: str, games: int) -> float:
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "server.cli", "run", "connect4", "--matches", "4096", "--agents",
                        "./examples/centre_bot.py:CentreBot,random", mode, "--games", str(games), "--json",
                        "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])["agent_steps_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--games", type=int, default=40000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    trusted, isolated = [], []
    for _ in range(a.rounds):
        trusted.append(once("--trust", a.games))
        isolated.append(once("--isolate", a.games))
    t, i = statistics.median(trusted), statistics.median(isolated)
    print(f"connect4 4096 matches, CentreBot vs random, {a.games} games, median of {a.rounds}:")
    print(f"  in-process (--trust): {t:>14,.0f} agent-steps/s   runs: {', '.join(f'{x:,.0f}' for x in trusted)}")
    print(f"  isolated (--isolate): {i:>14,.0f} agent-steps/s   runs: {', '.join(f'{x:,.0f}' for x in isolated)}")
    print(f"  isolated / in-process: {100 * i / t:.0f}%")
    if a.json:
        print(json.dumps({"trusted_agent_steps_per_s": t, "isolated_agent_steps_per_s": i, "ratio": i / t}))


if __name__ == "__main__":
    main()
