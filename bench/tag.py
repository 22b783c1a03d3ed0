"""The tag arena beside mpe2's ``simple_tag_v3``, the game it re-implements: agent-steps/s, one run.

    python bench/tag.py [--matches 4096] [--seconds 5] [--threads 2] [--json]

Both sides play random discrete actions with the default options (3 adversaries, 1 good agent,
2 obstacles, 25-step episodes); an agent-step is one agent acting for one step.

- tag: ``--matches`` matches stepped together by the numba kernels at ``--threads`` threads, actions
  from pre-drawn uniform numbers (``server.bench.engine_rate``, as ``arena bench`` measures every
  arena); the first make+step (JIT or cache load) is timed apart.
- mpe2: ``simple_tag_v3.parallel_env()`` stepped one step at a time with pre-drawn random actions,
  reset with a fresh seed when an episode ends (``server.bench.peer_battle``: battle's peer is the
  same game).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, ROOT)


def bench_tag(matches: int = 4096, seconds: float = 5.0, threads: int = 2, seed: int = 0) -> dict:
    """Measure tag (``matches`` matches, ``threads`` numba threads) and mpe2 for ``seconds`` each.

    Returns ``{"tag_agent_steps_per_s", "tag_1_thread_agent_steps_per_s", "mpe2_agent_steps_per_s",
    "ratio", "compile_s", "matches", "threads", "tag": {...}, "mpe2": {...}}`` (the last two: the full
    figures of each side; the 1-thread figure shows what the threads add, or cost on a busy machine,
    where a thread waiting for a core stalls every step); ``mpe2_agent_steps_per_s`` and ``ratio`` are
    None when mpe2 is not installed.
    """
    import numba

    from server.bench import compile_time, engine_rate, peer_battle

    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    compile_s = compile_time("tag")
    try:
        tag = engine_rate("tag", matches, seconds, threads, seed=seed)
        one = engine_rate("tag", matches, seconds, 1, seed=seed) if threads > 1 else tag
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    mpe2 = peer_battle(seconds, seed=seed)
    peer_rate = mpe2["agent_steps_per_s"] if mpe2 else None
    return {
        "matches": matches, "threads": threads, "compile_s": round(compile_s, 3),
        "tag_agent_steps_per_s": tag["agent_steps_per_s"],
        "tag_1_thread_agent_steps_per_s": one["agent_steps_per_s"],
        "mpe2_agent_steps_per_s": peer_rate,
        "ratio": tag["agent_steps_per_s"] / peer_rate if peer_rate else None,
        "tag": tag, "mpe2": mpe2,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matches", type=int, default=4096)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = bench_tag(a.matches, a.seconds, a.threads)
    print(f"tag, {r['matches']} matches, {r['threads']} threads, random discrete actions "
          f"(first make+step {r['compile_s']:.2f} s):")
    print(f"  tag (numba):               {r['tag_agent_steps_per_s']:>14,.0f} agent-steps/s")
    if r["threads"] > 1:
        print(f"  tag (numba, 1 thread):     {r['tag_1_thread_agent_steps_per_s']:>14,.0f} agent-steps/s")
    if r["mpe2"] is None:
        print("  mpe2 simple_tag_v3:        not installed")
    else:
        print(f"  {r['mpe2']['name']}: {r['mpe2_agent_steps_per_s']:>14,.0f} agent-steps/s")
        print(f"  ratio tag / mpe2:          {r['ratio']:>14,.0f}x")
    if a.json:
        print(json.dumps({k: v for k, v in r.items() if k not in ("tag", "mpe2")}))


if __name__ == "__main__":
    main()
