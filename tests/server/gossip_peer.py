"""A gossip learner for the tests: a ``GossipNode`` over a random vector, driven by lines on stdin.

    python gossip_peer.py NAME SIZE SEED [--bind ENDPOINT] [--timeout S] [--retry-after S]

Prints ``endpoint E`` once bound, then answers each command with one line:

=====================  =======================================================================
``peers N=E N=E ...``  connect to the peers and start the node; ``ok``
``x [PEER]``           one exchange (with a random live peer, or PEER): ``done OK PEER REASON``
``dump PATH``          write the parameters to PATH (.npy); ``dumped``
``stats``              the node's statistics as one JSON line
``stall``              from now on a request is received whole and then never answered (the
                       learner hangs mid-exchange until it is killed); prints ``stalled`` when one
                       arrives
=====================  =======================================================================
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.learn.gossip import GossipNode, VectorParams  # noqa: E402


class StallingNode(GossipNode):
    stall = False

    def _serve(self, ident, frames):
        if self.stall:
            print("stalled", flush=True)
            while True:
                time.sleep(60)
        super()._serve(ident, frames)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("size", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--bind", default="tcp://127.0.0.1:*")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--retry-after", type=float, default=5.0)
    args = ap.parse_args()
    params = VectorParams(np.random.default_rng(args.seed).standard_normal(args.size).astype(np.float32))
    node = StallingNode(args.name, args.bind, params, timeout=args.timeout, retry_after=args.retry_after,
                        seed=args.seed)
    print("endpoint", node.endpoint, flush=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "peers":
            node.connect_peers(dict(p.split("=", 1) for p in rest))
            node.start()
            print("ok", flush=True)
        elif cmd == "x":
            r = node.exchange(rest[0] if rest else None)
            print("done", int(r.ok), r.peer, r.reason.replace(" ", "_") or "-", flush=True)
        elif cmd == "dump":
            np.save(rest[0], params.get())
            print("dumped", flush=True)
        elif cmd == "stats":
            print(json.dumps(node.stats.as_dict()), flush=True)
        elif cmd == "stall":
            node.stall = True
            print("ok", flush=True)
    node.close()


if __name__ == "__main__":
    main()
