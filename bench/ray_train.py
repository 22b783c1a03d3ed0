"""``arena train --backend ray`` on a two-node Ray cluster on this machine: where the actors went, and what
the policy learned (the learning check the CI tests leave out).

    python bench/ray_train.py [--arena connect4] [--minutes 3] [--seed 0] [--kill]

Starts two Ray nodes bound to loopback (``ray.cluster_utils.Cluster``, 3 CPUs each: Ray's scheduling
count), runs ``arena train ARENA --backend ray --spread`` against it in a subprocess with the default
sizes, and prints the node of each actor, the restarts and the evaluation against random and greedy.
``--kill`` SIGKILLs the worker actor and learner L1's actor once L1 has a checkpoint, as the test does.
Needs the ray extra (``pip install -e '.[ray]'``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACED = re.compile(r"([\w.-]+)@([\d.]+)\((\w+)\) pid (\d+)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arena", default="connect4")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learners", type=int, default=2)
    ap.add_argument("--kill", action="store_true", help="SIGKILL the worker and learner L1 actors mid-run")
    args = ap.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"     # before Ray is imported: loopback only
    from ray.cluster_utils import Cluster

    from agents import checkpoint as ckpt

    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=3, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    print(f"two Ray nodes on loopback in {time.monotonic() - t0:.1f} s: {cluster.address}", flush=True)
    out = Path(tempfile.mkdtemp(prefix="arena-bench-ray-")) / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "server.cli", "train", args.arena, "--backend", "ray", "--address", cluster.address,
           "--spread", "--learners", str(args.learners), "--minutes", str(args.minutes), "--out", str(out),
           "--seed", str(args.seed), "--every", "30", "--save-every", "20"]
    print("$ " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    where: dict = {}
    killed = False
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            if not where and PLACED.search(line):
                where = {m[1]: int(m[4]) for m in PLACED.finditer(line)}
            if args.kill and not killed and where and ckpt.has_checkpoint(out / "learners" / "L1"):
                for name in ("w0", "L1"):
                    os.kill(where[name], signal.SIGKILL)
                    print(f"--- killed {name}'s actor (pid {where[name]})", flush=True)
                killed = True
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cluster.shutdown()
    summary = json.loads((out / "summary.json").read_text())
    nodes = summary.get("nodes", {})
    print(f"nodes: {len(set(nodes.values()))} ({', '.join(f'{n}: {v[:8]}' for n, v in nodes.items())}); "
          f"restarts: {summary.get('restarts')}")
    for opp, r in summary.get("eval", {}).items():
        print(f"vs {opp}: {r['win_rate']:.1%} of {r['games']} games")
    print(f"agent-steps/s after warm-up: {summary.get('steady_agent_steps_per_s', 0):,.0f}; run folder {out.parent}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
