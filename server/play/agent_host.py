"""The process an isolated agent runs in: ``python -m server.play.agent_host ...`` (started by ``IsolatedAgent``).

Before anything else, while it has one thread and no agent code is loaded, it confines itself
(``server.play.sandbox.confine``: dies with its parent, no network, files, capabilities, rlimits, no
new processes). Then it builds the arena (one match, for the agent's spaces) and says ``hello`` with
``stage="ready"`` (the protections it could not apply and its CPU time so far: from here on, CPU time is
the agent's), loads the agent, says ``hello`` again (or ``error`` with why it could not), then answers
each ``act`` with
``actions`` or ``error``, over one ZeroMQ PAIR socket and the protocol in ``server.net.protocol``. It
exits on ``bye`` or when its parent goes away.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

PARENT_POLL_MS = 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--arena", required=True)
    ap.add_argument("--options", default="{}")
    ap.add_argument("--args", default="{}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parent", type=int, required=True, help="the pid of the process that started us")
    ap.add_argument("--policy", required=True, help="the sandbox policy (JSON, server.play.sandbox.Policy)")
    a = ap.parse_args(argv)

    from server.play.sandbox import Policy, confine, use_numba_cache

    policy = Policy.from_json(a.policy)
    missing = confine(policy, a.parent)
    use_numba_cache(os.path.join(policy.scratch, ".numba"))
    return serve(a, missing)


def serve(a, missing: list[str]) -> int:
    import numpy as np
    import zmq

    from agents.check import describe
    from server.net.protocol import DTYPES, Message, ProtocolError, decode, encode
    from server.net.protocol import MAX_MESSAGE_BYTES
    from server.play.sandbox import cpu_times

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.connect(a.endpoint)
    try:
        import arenas
        from agents.loader import load_agent

        game = arenas.get(a.arena).game(num_matches=1, **json.loads(a.options))
        total, threads = cpu_times(os.getpid()) or (0.0, {})   # ours so far: from here on, the agent's
        sock.send_multipart(encode(Message("hello", meta={"stage": "ready", "missing": missing, "cpu": total,
                                                          "tids": list(threads), "tid_cpu": list(threads.values())})))
        agent = load_agent(a.spec, game, seed=a.seed, args=json.loads(a.args))
    except BaseException as exc:  # report any load failure to the parent, then leave
        sock.send_multipart(encode(Message("error", meta={"error": str(exc) if exc.args else describe(exc)})))
        return 1
    from agents.base import Agent

    inner = getattr(agent, "inner", agent)
    hooks = [h for h in ("on_match_start", "on_match_end")
             if callable(getattr(inner, h, None)) and getattr(type(inner), h, None) is not getattr(Agent, h)]
    sock.send_multipart(encode(Message("hello", meta={"role": "agent", "pid": os.getpid(), "hooks": hooks})))

    while True:
        if not sock.poll(PARENT_POLL_MS):
            if os.getppid() != a.parent:  # orphaned: the parent died without saying bye
                return 0
            continue
        try:
            msg = decode(sock.recv_multipart(copy=False))
        except ProtocolError as exc:
            sock.send_multipart(encode(Message("error", meta={"error": f"bad request: {exc}"})))
            continue
        if msg.type == "bye":
            getattr(agent, "close", lambda: None)()
            return 0
        if msg.type == "reset":
            agent.reset(int(msg.meta.get("seed", 0)))
            continue
        if msg.type in ("match_start", "match_end"):
            try:
                if msg.type == "match_start":
                    agent.on_match_start(msg.arrays["slots"])
                else:
                    agent.on_match_end(msg.arrays["slots"], msg.arrays["outcomes"])
            except Exception:
                pass  # a failing hook costs the agent nothing but its own bookkeeping
            continue
        if msg.type != "act":
            continue
        try:
            out = np.asarray(agent.act(msg.arrays["obs"], msg.arrays["mask"]))
            if out.dtype.name not in DTYPES:
                raise TypeError(f"returned dtype {out.dtype}; actions must be integers")
            reply = Message("actions", seq=msg.seq, arrays={"actions": out})
        except Exception as exc:
            text = str(exc) if isinstance(exc, TypeError) and str(exc).startswith("returned") else describe(exc)
            reply = Message("error", seq=msg.seq, meta={"error": text})
        sock.send_multipart(encode(reply), copy=False)


if __name__ == "__main__":
    sys.exit(main())
