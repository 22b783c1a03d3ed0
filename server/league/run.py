"""``arena league``: the self-play league, on the one data path of ``arena train``.

One game server plays every match slot; each slot belongs to one learner of a learning member (main
agents ``main0..``, main exploiters ``mx0..``, league exploiters ``lx0..``; ``--learners K`` each, which
gossip only among themselves). When a slot's match ends, ``LeagueSeating`` records the result and asks
the matchmaker (``matchmaking.Matchmaker``: self-play, PFSP over the frozen members, ...) whom that
learner plays next. Policy workers serve every member at once: the learners' current versions (hot
swapped), the fixed members (``random``, ``greedy``, ``search``, custom agents) and the snapshots, which
the league broadcasts on its own PUB socket into numbered slots (``snap0..``; ``policies.SnapshotBoard``).

Every ``RECORD_EVERY`` seconds the finished matches are committed to ``DIR/league.db`` in one transaction
with their rating updates (``store.LeagueStore.record``). A learning member is frozen when the snapshot
rule fires (``matchmaking.SnapshotRule``): its newest parameters are written as a checkpoint folder under
``DIR/snapshots/NAME`` (temporary folder, fsync, rename) *before* the row naming it is committed; a main
exploiter then restarts from its initial weights (a new generation of learners, publishing versions above
the old ones). ``arena league --dir DIR`` on an existing league resumes it: members, snapshots, matches
and ratings from the database, the payoff rebuilt from the matches, the learners from their checkpoints.
"""
from __future__ import annotations

import secrets
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import zmq

import arenas
from agents.checkpoint import POINTER, CheckpointError
from agents.neural import NeuralAgent

from server.net.endpoints import bind as bind_socket
from server.net.protocol import Message, encode
from server.net.cluster import Backend, make_procs
from server.play.feed import LearningSpec
from server.play.gameserver import GameServer
from server.learn import checkpoints
from server.learn.config import preset
from server.learn.report import Watcher
from server.learn.run import resume_cmd

from . import FIXED, LEAGUE_EXPLOITER, MAIN, MAIN_EXPLOITER, SNAPSHOT, LeagueError, Member
from .matchmaking import Matchmaker, SnapshotRule, steps_since_snapshot
from .payoff import Payoff
from .outputs import leaderboard_text, write_json_atomic, write_outputs
from .roster import GUEST_SEATS, LeagueSeating, Roster
from .store import LeagueStore

#: a learning member's steps (its learners' agent-steps) between snapshots, N of the snapshot rule (due at
#: N when it beats every current opponent at 70%, at 2N regardless). Chosen for "a snapshot every few
#: minutes" on 2 cores: each of the default two learning members trains at about 30 k agent-steps/s on
#: connect4 (``arena train connect4``: 60-67 k/s for two learners), so 5 M is about 3 minutes; battle and
#: tag train at about 80 k/s and 200 k/s in all, their N likewise.
SNAPSHOT_STEPS = {"connect4": 5_000_000, "battle": 7_000_000, "tag": 15_000_000}
#: snapshot slots the workers serve; beyond that the oldest snapshots retire from matchmaking (kept)
SNAPSHOT_SLOTS = 32
#: seconds between two commits of finished matches (one transaction each)
RECORD_EVERY = 0.5
#: seconds between two broadcasts of every snapshot (workers that started late get them)
REPUBLISH_EVERY = 3.0
#: seconds between two looks at the snapshot rule
RULE_EVERY = 2.0
#: an earlier snapshot counts as "earlier" for the final check when taken this long before the end (s)
EARLIER_S = 300.0
KIND_PREFIX = {MAIN: "main", MAIN_EXPLOITER: "mx", LEAGUE_EXPLOITER: "lx"}


@dataclass
class LeaguePlan:
    arena: str
    dir: Path
    minutes: float | None = None
    main: int = 1
    exploiters: int = 1
    league_exploiters: int = 0
    learners: int = 1
    workers: int = 1
    opponents: list = field(default_factory=lambda: ["random", "greedy"])
    agent_args: list = field(default_factory=list)
    pfsp: str = "hard"
    snapshot_steps: int | None = None
    init: str | None = None
    seed: int = 0
    eval_games: int = 1000
    every: float = 10.0
    device: str = "auto"
    transport: str = "auto"
    groups: int = 2
    options: dict = field(default_factory=dict)
    max_snapshots: int | None = None
    #: seconds between two checkpoints of each learner (what a killed league resumes from)
    save_every: float = 60.0
    #: the game server's endpoint (default: ipc in a private folder); remote members connect here
    bind: str | None = None
    keys: str | None = None
    #: where the learners and policy workers run: here (None, ``local``) or on a Ray cluster
    backend: Backend | None = None
    #: TrainConfig fields for every learner (``--set``: num_matches, horizon, ...)
    overrides: dict = field(default_factory=dict)


# -- the league run ---------------------------------------------------------------------------------
class League:
    """Opens (or creates) the league in ``plan.dir`` and runs it: see the module docstring."""

    def __init__(self, plan: LeaguePlan, out=sys.stdout):
        self.plan, self.out = plan, out
        self.say = lambda text: print(text, file=out, flush=True)   # noqa: E731
        self.dir = Path(plan.dir)
        self.store = self._open()
        cfg = self.store.config()
        self.config = cfg
        self.matchmaker = Matchmaker(np.random.default_rng(cfg["seed"] + int(time.time())), pfsp=cfg["pfsp"])
        self.rule = SnapshotRule(int(cfg["snapshot_steps"]), rng=np.random.default_rng(cfg["seed"] + 1))
        self.payoff = Payoff.from_matches(self.store.matches())
        for m in self.store.members():             # remote members play again once they join again
            if m.kind == FIXED and m.spec.get("remote") and m.active:
                self.store.set_active(m.name, False)
        self.members = self.store.members()
        self.roster = Roster(self.members, cfg["learners"], SNAPSHOT_SLOTS)
        for m in self.members:                     # snapshots keep their slots across a resume
            if m.kind == SNAPSHOT and m.active and "slot" in m.spec:
                self.roster.seat(int(m.spec["slot"]), m.name)
        self.pending: list[tuple] = []
        self.run_id = secrets.token_hex(4)
        self.match_counter = 0
        self.recorded = 0
        self.cost_s = 0.0                          # seconds in matchmaking, recording and rating
        self.game = arenas.make(plan.arena, num_matches=1, seed=0, **cfg["options"])

    # -- opening ------------------------------------------------------------------------------------
    def _open(self) -> LeagueStore:
        plan = self.plan
        db = self.dir / "league.db"
        if db.exists():
            store = LeagueStore.open(self.dir, plan.arena)
            try:
                self._check_files(store)
            except LeagueError:
                store.close()
                raise
            self.resumed = True
            return store
        if self.dir.exists() and any(self.dir.iterdir()):
            raise LeagueError(f"{self.dir} holds files but no league.db: choose an empty or new folder")
        composition = {MAIN: plan.main, MAIN_EXPLOITER: plan.exploiters, LEAGUE_EXPLOITER: plan.league_exploiters}
        if plan.main < 1:
            raise LeagueError("a league needs at least one main agent (--main)")
        fixed = self._fixed_specs()
        store = LeagueStore.open(self.dir, plan.arena, create=True)
        try:
            store.set_config({"arena": plan.arena, "composition": composition, "learners": plan.learners,
                              "opponents": list(plan.opponents), "agent_args": list(plan.agent_args),
                              "pfsp": plan.pfsp, "seed": plan.seed, "options": plan.options, "init": plan.init,
                              "snapshot_steps": plan.snapshot_steps or SNAPSHOT_STEPS.get(plan.arena, 5_000_000),
                              "generations": {}, "step_base": {}, "overrides": plan.overrides,
                              "max_snapshots": plan.max_snapshots})
            for kind, n in composition.items():
                for i in range(n):
                    store.add_member(f"{KIND_PREFIX[kind]}{i}", kind, spec={"learners": plan.learners})
            for name, agent, path in fixed:
                store.add_member(name, FIXED, spec={"agent": agent}, path=path)
        except BaseException:
            store.close()
            raise
        self.resumed = False
        return store

    def _fixed_specs(self) -> list[tuple[str, str, str | None]]:
        """``(member name, agent spec, file to watch or None)`` of the fixed members in ``--opponents``,
        each checked by loading it now (a bad one is one line, before anything is written)."""
        from agents.loader import kind, load_agent, split_agent_args
        from agents.registry import UnknownAgent

        plan = self.plan
        game = arenas.make(plan.arena, num_matches=1, seed=0, **plan.options)
        args = split_agent_args(plan.agent_args, list(plan.opponents)) if plan.agent_args else {}
        out, seen = [], set()
        for spec in plan.opponents:
            try:
                how = kind(spec)
            except UnknownAgent as exc:
                raise LeagueError(f"--opponents: {exc}") from None
            path = spec.rsplit(":", 1)[0] if how == "file" else None
            name = spec.rsplit(":", 1)[-1] if ":" in spec else spec
            name = "".join(c if c.isalnum() or c in "_-.#" else "_" for c in name)[:48] or "agent"
            if name in seen or name[:4] in ("main", "snap") or name[:2] in ("mx", "lx"):
                raise LeagueError(f"--opponents: {spec!r} would be named {name!r}, which is taken")
            seen.add(name)
            try:
                if how != "file":
                    load_agent(spec, game, seed=0, args=args.get(spec, {}))
            except Exception as exc:
                raise LeagueError(f"--opponents: cannot load {spec!r}: {exc}") from None
            out.append((name, spec, path))
        return out

    def _check_files(self, store: LeagueStore) -> None:
        """Every member's file as it joined (snapshots load, custom agents unchanged), and every learner's
        checkpoint readable: before anything is written."""
        for m in store.members():
            store.verify_file(m.name)
            if m.kind == SNAPSHOT and m.path is not None and not m.spec.get("removed"):
                try:
                    NeuralAgent.load(m.path, device="cpu")
                except (CheckpointError, FileNotFoundError, OSError, ValueError) as exc:
                    raise LeagueError(f"snapshot {m.name}: {str(exc).splitlines()[0]}") from None

    # -- learners ------------------------------------------------------------------------------------
    def _learner_dir(self, member: str, k: int) -> Path:
        gen = int(self.config["generations"].get(member, 0))
        return self.dir / "learners" / (f"{member}-L{k}" + (f".g{gen}" if gen else ""))

    def _start_learners(self, member: Member, procs, ep: dict, version_start: int = 0) -> None:
        K = self.config["learners"]
        names = [f"{member.name}-L{k}" for k in range(K)]
        for k, n in enumerate(names):
            out = self._learner_dir(member.name, k)
            cmd = [sys.executable, "-m", "server.cli", "learner", self.plan.arena, "--config", "{dir}/config.json",
                   "--name", n, "--seed", str(100 + self.config["seed"] + k), "--out", str(out),
                   "--bind", ep[n]["gossip"], "--pub", ep[n]["pub"], "--segments", ep[n]["seg"],
                   "--device", self.plan.device, "--exit-with-parent", "--version-start", str(version_start),
                   "--save-every", str(self.plan.save_every), *procs.keys_flag()]
            peers = [f"{m}={ep[m]['gossip']}" for m in names if m != n]
            if peers:
                cmd += ["--peers", ",".join(peers)]
            if checkpoints.learner_state(out) is not None:
                cmd.append("--resume")
            elif member.kind == MAIN and self.config.get("init"):
                cmd += ["--init", self.config["init"]]
            # a learner restarted by Ray goes on from its last checkpoint
            procs.start(n, cmd, self.files, restart=(resume_cmd(cmd), str(out / POINTER)))

    def member_steps(self, name: str) -> int:
        """A learning member's steps: its learners' agent-steps, across generations."""
        base = int(self.config["step_base"].get(name, 0))
        now = sum(int(s.get("agent_steps", 0)) for n, s in self.watcher.stats.items() if n.rsplit("-L", 1)[0] == name)
        return base + now

    # -- results -------------------------------------------------------------------------------------
    def finished(self, group: int, slots, seated, winner, lengths) -> None:
        t0 = time.perf_counter()
        of = self.roster.member_of_agent
        for s, (a, b), w, n in zip(slots.tolist(), seated.tolist(), winner.tolist(), lengths.tolist()):
            ma, mb = of.get(a), of.get(b)
            if ma is None or mb is None:
                continue
            score = 1.0 if w == 0 else 0.0 if w == 1 else 0.5
            self.match_counter += 1
            self.pending.append((f"{self.run_id}-{self.match_counter}", ma, mb, score, max(int(n), 1)))
            self.payoff.update(ma, mb, score)
        self.cost_s += time.perf_counter() - t0

    def commit(self) -> None:
        if not self.pending:
            return
        t0 = time.perf_counter()
        steps = {m.name: self.member_steps(m.name) for m in self.roster.learning}
        batch, self.pending = self.pending, []
        self.recorded += self.store.record(batch, steps=steps)
        self.cost_s += time.perf_counter() - t0

    # -- snapshots -----------------------------------------------------------------------------------
    def _publish(self, member: Member, slot: int) -> None:
        agent = NeuralAgent.load(member.path, device="cpu")
        from torch.nn.utils import parameters_to_vector
        vec = parameters_to_vector(agent.net.parameters()).detach().numpy().astype(np.float32)
        meta = agent.metadata()
        self.pub.send_multipart(encode(Message("params", sender="league", arrays={"params": vec}, meta={
            "learner": f"snap{slot}", "version": int(member.spec.get("serial", 0)), "size": int(vec.size),
            "arch": meta["arch"], "hidden": meta["hidden"], "channels": meta["channels"]})))

    def _republish(self) -> None:
        for slot, name in self.roster.slot_member.items():
            self._publish(self.store.member(name), slot)

    def _snapshot(self, member: Member) -> None:
        learner = f"{member.name}-L0"
        vec = self.watcher.params.get(learner)
        info = self.watcher.layouts.get(learner)
        if vec is None or info is None:
            return
        slot = self.roster.free_slot()
        if slot is None:                             # every slot taken: the oldest snapshot retires
            oldest = min((m for m in self.members if m.kind == SNAPSHOT and m.name in self.roster.agents_of),
                         key=lambda m: m.created_at)
            self.store.set_active(oldest.name, False)
            slot = next(k for k, n in self.roster.slot_member.items() if n == oldest.name)
            self.say(f"league: snapshot {oldest.name} retires (all {SNAPSHOT_SLOTS} snapshot slots taken)")
        steps = self.member_steps(member.name)
        serial = sum(1 for m in self.members if m.kind == SNAPSHOT) + 1
        while self.store.has_member(name := f"{member.name}-s{serial}"):
            serial += 1
        agent = NeuralAgent(self.game, arch=info["arch"], hidden=info["hidden"], channels=info["channels"],
                            device="cpu", arena=self.plan.arena)
        agent.load_state(np.array(vec, copy=True))
        path = agent.save(self.dir / "snapshots" / name)        # whole or not at all, before its row
        snap = self.store.add_snapshot(member.name, name, path, steps,
                                       spec={"slot": slot, "serial": serial, "version": int(info["version"])})
        self.roster.seat(slot, name)
        self.members = self.store.members()
        self._publish(snap, slot)
        self.say(f"league: snapshot {name} of {member.name} (slot {slot})")
        self._prune()
        if self.rule.resets_after_snapshot(member.kind):
            self._reset(member, int(info["version"]))

    def _prune(self) -> None:
        """``--max-snapshots N``: beyond N snapshots on disk, the oldest ones every main agent beats
        (win rate >= 70%: PFSP no longer needs them) retire and their files go; said in the log."""
        limit = self.config.get("max_snapshots")
        if not limit:
            return
        kept = [m for m in self.members if m.kind == SNAPSHOT and not m.spec.get("removed")]
        mains = [m.name for m in self.members if m.kind == MAIN]
        for m in sorted(kept, key=lambda m: m.created_at)[:max(0, len(kept) - int(limit))]:
            if all(self.payoff.win_rate(x, m.name) >= 0.7 for x in mains):
                slot = next((k for k, n in self.roster.slot_member.items() if n == m.name), None)
                self.store.remove_file(m.name)
                if slot is not None:
                    del self.roster.slot_member[slot]
                    self.roster.agents_of.pop(m.name, None)
                self.say(f"league: removed snapshot {m.name}'s files (--max-snapshots {limit}; every main agent "
                         f"beats it); its matches and rating stay")
        self.members = self.store.members()

    def _reset(self, member: Member, version: int) -> None:
        """A new generation of ``member``'s learners, from its initial weights, publishing above ``version``."""
        K = self.config["learners"]
        names = [f"{member.name}-L{k}" for k in range(K)]
        for n in names:
            self.procs.stop_one(n)
        cfg = self.store.config()
        cfg["step_base"][member.name] = self.member_steps(member.name)
        cfg["generations"][member.name] = int(cfg["generations"].get(member.name, 0)) + 1
        self.store.set_config(cfg)
        self.config = cfg
        for n in names:
            self.watcher.forget(n)
        self._start_learners(member, self.procs, self.ep, version_start=version + 1)
        self.say(f"league: {member.name} restarts from its initial weights (generation "
                 f"{cfg['generations'][member.name]})")

    def _rule(self) -> None:
        for m in self.roster.learning:
            steps = self.member_steps(m.name)
            member = Member(**{**asdict(self.store.member(m.name)), "steps": steps})
            league = [member if x.name == m.name else x for x in self.members
                      if x.kind != SNAPSHOT or x.name in self.roster.agents_of]
            if steps_since_snapshot(m.name, league) > 0 and self.rule.ready(m.name, league, self.payoff):
                self._snapshot(m)

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> dict:
        plan, cfg = self.plan, self.config
        tcfg = preset(plan.arena, options=cfg["options"], seed=cfg["seed"], net_seed=cfg["seed"],
                      **cfg.get("overrides", {}))
        self.files = {"config.json": json.dumps(tcfg.to_dict())}
        learner_agents = self.roster.learner_agents
        workers = [f"w{w}" for w in range(plan.workers)]
        self.procs = procs = make_procs(plan.backend, "league", self.say, keys=plan.keys)
        server = self.pub = self.watcher = None
        interrupted = False
        old = {}
        try:
            procs.place({**{n: "learner" for n in learner_agents}, **{w: "worker" for w in workers}})
            keys = plan.keys or procs.keys_dir
            self.ep = {n: {k: procs.endpoint(n, k) for k in ("gossip", "pub", "seg")} for n in learner_agents}
            ctx = zmq.Context.instance()
            self.pub = ctx.socket(zmq.PUB)
            self.pub.setsockopt(zmq.LINGER, 0)
            league_pub = bind_socket(self.pub, procs.server_endpoint("league.pub"), procs.keys_dir, "the league's snapshots")
            self.watcher = Watcher({n: self.ep[n]["pub"] for n in learner_agents}, keys_dir=procs.keys_dir)
            for m in self.roster.learning:
                self._start_learners(m, procs, self.ep)
            spec = LearningSpec(agents={n: (n, self.ep[n]["seg"], self.ep[n]["pub"]) for n in learner_agents},
                                horizon=tcfg.horizon, chunk=max(16, tcfg.batch_segments // 4),
                                win_reward=tcfg.win_reward)
            seating = LeagueSeating(self)
            from server.spectator.publisher import FramePublisher
            server = GameServer(plan.arena, self.roster.names, tcfg.num_matches * len(learner_agents),
                                seed=cfg["seed"], options=cfg["options"], bind=plan.bind or procs.server_endpoint("server"),
                                stats_bind=None if plan.bind else procs.server_endpoint("stats"), keys_dir=keys,
                                groups=plan.groups, learning=spec,
                                seating=seating.group, forever=True, transport=plan.transport,
                                spectators=lambda runners, c: FramePublisher(procs.server_endpoint("spectate"),
                                                                             plan.arena, runners, ctx=c, keys_dir=keys))
            self.server = server
            self.started = time.monotonic()
            self.seating = seating
            server.absent_forfeits = set(self.roster.names[self.roster.guest_base:])
            server.on_hello, server.on_worker_lost = self.on_hello, self.on_worker_lost
            server.on_worker_ready = self.on_worker_ready
            self.guests: dict[bytes, str] = {}
            self.say(f"arena league {plan.arena}: {', '.join(m.name for m in self.roster.learning)} learning "
                     f"({cfg['learners']} learner(s) each), fixed {', '.join(m.name for m in self.roster.fixed) or '-'}, "
                     f"{sum(1 for m in self.members if m.kind == SNAPSHOT)} snapshot(s); {server.slots} match slots; "
                     f"{'resumed' if self.resumed else 'new'} league in {self.dir}")
            if server.spectators is not None:
                self.say(f"spectators: arena watch --connect {server.spectators.endpoint}")
            agents_flag = ",".join(self.roster.names[:self.roster.guest_base])   # guest seats: remote workers
            for w in workers:
                cmd = [sys.executable, "-m", "server.cli", "worker", "--connect", server.bind, "--exit-when-done",
                       "--quiet", "--agents", agents_flag, "--device", plan.device, "--league-pub", league_pub,
                       *procs.keys_flag()]
                if plan.keys and not procs.keys_flag():
                    cmd += ["--keys", plan.keys]
                for a in cfg["agent_args"]:
                    cmd += ["--agent-arg", a]
                for n in learner_agents:
                    cmd += ["--learner", f"{n}={self.ep[n]['pub']}"]
                procs.start(w, cmd)
            self._republish()
            board = _Board(self)
            server.on_tick = board.tick

            def as_interrupt(signum, frame):
                raise KeyboardInterrupt
            old = {sig: signal.signal(sig, as_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
            server.serve()
        except KeyboardInterrupt:
            interrupted = True
            self.say("interrupted: saving what the league has")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            try:
                self.commit()
            except Exception as exc:       # the last batch only; everything before it is committed
                self.say(f"(the last results were not recorded: {exc})")
            if server is not None:
                server.close()
            procs.stop()
            self.restarts = procs.restarts()
            procs.close()
            if self.watcher is not None:
                self.watcher.close()
            if self.pub is not None:
                self.pub.close(0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig, h in old.items():
                signal.signal(sig, h)
        return self.finish(interrupted)

    # -- remote members ------------------------------------------------------------------------------
    def on_hello(self, ident: bytes, meta: dict) -> dict:
        """A worker that says ``league_member``: seat it as that fixed member (added on its first visit)."""
        name = meta.get("league_member")
        if not isinstance(name, str):
            return {}
        if ident in self.guests:                       # the same worker saying hello again
            self.roster.unseat_guest(self.guests.pop(ident))
        ok = bool(name) and len(name) <= 48 and all(c.isalnum() or c in "_-." for c in name)
        known = self.store.member(name) if ok and self.store.has_member(name) else None
        if not ok or (known is not None and not known.spec.get("remote")) or name in self.roster.guest_member.values():
            self.say(f"league: refused remote member {name!r} (a bad or taken name)")
            return {}
        if known is None:
            self.store.add_member(name, FIXED, spec={"agent": "remote", "remote": True})
        else:
            self.store.set_active(name, True)
        k = self.roster.seat_guest(name)
        if k is None:
            self.say(f"league: no free seat for remote member {name!r} ({GUEST_SEATS} play at once)")
            return {}
        self.guests[ident] = name
        self.members = self.store.members()
        return {"guest": f"guest{k}"}

    def on_worker_ready(self, worker) -> None:
        name = self.guests.get(worker.ident)
        if name is not None:                     # a remote member's worker can act: it is matched from now on
            self.roster.play_guest(name)
            self.seating.pools.clear()
            k = next(k for k, m in self.roster.guest_member.items() if m == name)
            self.say(f"league: remote member {name!r} joined (seat guest{k})")

    def on_worker_lost(self, worker) -> None:
        name = self.guests.pop(worker.ident, None)
        if name is None:
            return
        self.roster.unseat_guest(name)
        self.store.set_active(name, False)
        self.members = self.store.members()
        self.seating.pools.clear()
        self.say(f"league: remote member {name!r} left; its matches in flight are forfeits, the league goes on")

    # -- the end -------------------------------------------------------------------------------------
    def finish(self, interrupted: bool = False) -> dict:
        from server.learn.evaluate import evaluate

        members = self.store.members()
        board = self.store.leaderboard()
        mains = [s for s in board if s.kind == MAIN]
        write_outputs(self.store, self.dir, self.payoff)
        summary = {"arena": self.plan.arena, "matches": self.store.match_count(), "interrupted": interrupted,
                   "leaderboard": [s._asdict() for s in board]}
        seconds = time.monotonic() - getattr(self, "started", time.monotonic())
        if getattr(self, "server", None) is not None:
            st = self.server.stats()
            summary.update(seconds=round(seconds, 1), agent_steps=st["agent_steps"],
                           agent_steps_per_s=round(st["agent_steps_per_s"], 1),   # since the first worker was ready
                           matchmaking_rating_s=round(self.cost_s, 3),
                           matchmaking_rating_share=round(self.cost_s / max(seconds, 1e-9), 4))
        if getattr(self, "procs", None) is not None and self.procs.kind != "local":
            summary.update(backend=self.procs.kind, nodes=self.procs.nodes(), restarts=getattr(self, "restarts", {}))
        if not mains:
            write_json_atomic(self.dir / "league.json", summary)
            return summary
        top = mains[0].name
        src = self._learner_dir(top, 0)
        try:
            path = _publish_top(self.dir, src, self.game)
        except (CheckpointError, FileNotFoundError) as exc:
            self.say(f"no checkpoint of {top} to evaluate: {exc}")
            return summary
        summary.update(top=top, top_checkpoint=str(path))
        games = self.plan.eval_games
        if games:
            agent = NeuralAgent.load(path, device="cpu")
            evaluation, detail = {}, {}
            opponents: list[tuple[str, object, dict]] = [(m.name, m.spec["agent"], {}) for m in members
                                                         if m.kind == FIXED and not m.spec.get("remote")]
            if self.plan.arena == "connect4":
                opponents += [("search:depth=2", "search", {"depth": 2}), ("search:depth=4", "search", {"depth": 4})]
            end = time.time()
            earlier = []
            for m in members:
                if m.kind == SNAPSHOT and m.path and not m.spec.get("removed"):
                    opponents.append((m.name, NeuralAgent.load(m.path, device="cpu"), {}))
                    if m.parent == top and end - m.created_at >= EARLIER_S:
                        earlier.append(m.name)
            args = _agent_args(self.config["agent_args"])
            for name, opp, kw in opponents:
                if isinstance(opp, str):
                    from agents.loader import kind
                    if kind(opp) != "builtin":
                        from agents.loader import load_agent
                        g = arenas.make(self.plan.arena, num_matches=1, seed=0, **self.config["options"])
                        opp = load_agent(opp, g, seed=1, args=args.get(opp, {}))
                    else:
                        kw = {**args.get(opp, {}), **kw}
                r = evaluate(agent, self.plan.arena, opp, games=games, options=self.config["options"], opponent_args=kw)
                evaluation[name] = round(r["win_rate"], 4)
                detail[name] = r
                self.say(f"  {top} vs {name:<24} {r['wins']:>5} won {r['losses']:>5} lost {r['draws']:>5} drawn: "
                         f"{r['win_rate']:.1%}")
            summary.update(evaluation=evaluation, evaluation_detail=detail,
                           earlier_snapshots={n: evaluation[n] for n in earlier},
                           beats_every_earlier_snapshot=all(evaluation[n] > 0.5 for n in earlier))
        write_json_atomic(self.dir / "league.json", summary)
        return summary

    def close(self) -> None:
        self.store.close()


class _Board:
    """The server's tick: learners' stats, commits, the snapshot rule, broadcasts, the live leaderboard, the
    stop rule."""

    def __init__(self, league: League):
        self.lg = league
        now = time.monotonic()
        self.t0 = now
        self.start = None
        self.next = {"record": now + RECORD_EVERY, "rule": now + RULE_EVERY, "pub": now + REPUBLISH_EVERY,
                     "board": now + league.plan.every}
        self.prev_steps: dict[str, tuple[float, int]] = {}
        self.live = None
        if sys.stdout.isatty() and league.out is sys.stdout:
            try:
                from rich.console import Console
                from rich.live import Live
                self.live = Live(console=Console(), refresh_per_second=1, transient=False)
                self.live.start()
            except ImportError:
                self.live = None

    def tick(self, server) -> None:
        lg = self.lg
        lg.watcher.poll(0.0)
        now = time.monotonic()
        if self.start is None:
            if len(lg.watcher.stats) == len(lg.roster.learner_agents):
                self.start = now
            elif now - self.t0 > 180:
                lg.say("league: the learners did not start within 180 s")
                server.stop()
                return
        for n, rc in lg.procs.exited():
            lg.say(f"league: {n} exited with code {rc}; the league goes on without it")
            lg.procs.forget(n)
        if now >= self.next["record"]:
            lg.commit()
            self.next["record"] = now + RECORD_EVERY
        if self.start is not None and now >= self.next["rule"]:
            lg._rule()
            self.next["rule"] = now + RULE_EVERY
        if now >= self.next["pub"]:
            lg._republish()
            self.next["pub"] = now + REPUBLISH_EVERY
        if now >= self.next["board"]:
            self.show(now)
            self.next["board"] = now + lg.plan.every
        if self.start is not None and lg.plan.minutes is not None and now - self.start >= lg.plan.minutes * 60 \
                and not server.stopping:
            self.show(now)
            server.stop()

    def show(self, now: float) -> None:
        lg = self.lg
        text = leaderboard_text(lg.store, lg.payoff, self._rates(now),
                                f"{(now - (self.start or now)) / 60:.1f} min, {lg.store.match_count():,} matches")
        if self.live is not None:
            from rich.text import Text
            self.live.update(Text(text))
        else:
            lg.say(text)

    def _rates(self, now: float) -> dict[str, float]:
        out = {}
        for m in self.lg.roster.learning:
            steps = self.lg.member_steps(m.name)
            t, s = self.prev_steps.get(m.name, (now, steps))
            out[m.name] = (steps - s) / (now - t) if now > t else float("nan")
            self.prev_steps[m.name] = (now, steps)
        return out


def _agent_args(items: list[str]) -> dict[str, dict]:
    from simcore.options import parse_value

    out: dict[str, dict] = {}
    for item in items:
        key, _, value = item.partition("=")
        name, _, opt = key.partition(".")
        out.setdefault(name, {})[opt] = parse_value(value)
    return out


def _publish_top(folder: Path, learner_dir: Path, game) -> Path:
    """The top main agent's policy as ``DIR/top`` (a checkpoint folder ``ckpt:`` loads)."""
    agent = NeuralAgent.load(learner_dir, game, device="cpu")
    return agent.save(folder / "top")


def run_league(plan: LeaguePlan, out=sys.stdout) -> dict:
    """``arena league``: open or create the league in ``plan.dir``, run it, evaluate, write its files."""
    league = League(plan, out)
    try:
        return league.run()
    finally:
        league.close()
