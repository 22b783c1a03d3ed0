"""Checkpoints are one unit: a kill never leaves a mixed set, and no file, however broken or hostile,
gets further than one line on stderr and exit status 2.

Attacks: a learner killed (SIGKILL) in the middle of saving; a checkpoint folder written but the
pointer never switched; a state file from another checkpoint slipped into the folder; a truncated,
corrupt or garbage weights file; metadata asking for a net of 33 GB (``"hidden": 1e8``); weights whose
tensors do not fit the metadata; NaN weights; a pointer naming a folder outside the checkpoint. Each
through the real CLI where the user would meet it (``arena run --agents ckpt:...``, ``arena train
--resume``), asserting the exit status and the one line. Old single-file policies still load.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import arenas
from agents import checkpoint as ckpt
from agents.neural import NeuralAgent
from server.learn.checkpoints import read_learner_checkpoint
from server.learn.config import preset

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def arena(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_line_exit_2(p, *needles):
    # (the start-up notice that leftovers of killed arena processes were removed is not this error)
    lines = [line for line in p.stderr.strip().splitlines() if not re.match(r"arena: removed .* left by", line)]
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def c4(matches=1):
    return arenas.make("connect4", num_matches=matches, seed=0)


def policy(tmp_path, name="pol", hidden=16) -> Path:
    return NeuralAgent(c4(), seed=1, hidden=hidden, device="cpu").save(tmp_path / name)


def reseal(folder: Path) -> None:
    """Rewrite the manifest to match the files as they are now: a hostile checkpoint is self-consistent,
    so the checks behind the manifest must hold on their own."""
    m = json.loads((folder / "manifest.json").read_text())
    for name in m["files"]:
        data = (folder / name).read_bytes()
        m["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(m))


def edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "policy.json").read_text())
    meta.update(changes)
    (folder / "policy.json").write_text(json.dumps(meta))
    reseal(folder)


# -- a save is one unit ------------------------------------------------------------------------------
def test_a_folder_written_but_never_pointed_at_is_not_read_and_the_next_save_clears_leftovers(tmp_path):
    root = policy(tmp_path)
    first = ckpt.open_checkpoint(root)
    # killed after renaming the new folder, before switching the pointer: readers still get the first
    shutil.copytree(first.folder, root / ckpt.folder_name(2))
    (root / ckpt.folder_name(2) / "policy.json").write_text("{half a file")
    # killed while writing the folder: a temporary folder of a dead process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = root / f".tmp-ckpt-3-{int(dead.stdout)}"
    leftover.mkdir()
    (leftover / "policy.safetensors").write_bytes(b"\0" * 10)
    # killed while writing the pointer: its temporary file
    (root / f".checkpoint.json.tmp-{int(dead.stdout)}").write_text('{"latest": "ckpt-000003"')
    assert ckpt.open_checkpoint(root).folder == first.folder
    agent = NeuralAgent.load(root, game=c4(), device="cpu")
    assert agent.metadata()["hidden"] == 16

    # a writer that fails half way leaves the pointer where it was and no temporary folder
    def boom(path, number):
        path.write_bytes(b"partial")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        ckpt.write(root, {"policy.safetensors": boom})
    assert ckpt.open_checkpoint(root).folder == first.folder

    # the next save takes a fresh number, clears the dead writers' leftovers and keeps the newest few
    for _ in range(4):
        NeuralAgent(c4(), seed=3, hidden=16, device="cpu").save(root, keep=2)
    names = sorted(p.name for p in root.iterdir())
    assert names == ["checkpoint.json", "ckpt-000005", "ckpt-000006"], names
    assert ckpt.open_checkpoint(root).number == 6


KILLED_SAVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from server.learn.config import preset
    from server.learn.learner import Learner

    cfg = preset("connect4", num_matches=8, batch_segments=8, horizon=4, hidden=16)
    learner = Learner(cfg, "L0", Path(sys.argv[1]), gossip_bind=sys.argv[2], resume=sys.argv[3] == "1")
    print("ready", flush=True)
    while True:                           # every save a new version: any mix of two saves would show
        learner.state.version += 1
        learner.state.updates += 1
        for p in learner.net.parameters():
            p.data.fill_(float(learner.state.version))
        learner.save()
""")


def test_a_learner_killed_while_saving_leaves_one_whole_checkpoint(tmp_path):
    out = tmp_path / "L0"
    out.mkdir()
    script = tmp_path / "saver.py"
    script.write_text(KILLED_SAVER)
    game = c4()
    rng = np.random.default_rng(0)
    last = 0
    for attempt in range(4):
        args = [sys.executable, str(script), str(out), f"ipc://{tmp_path}/g{attempt}", str(int(attempt > 0))]
        proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            while ckpt.open_pointer(out)[1] <= last if ckpt.has_checkpoint(out) else True:
                assert time.monotonic() < deadline, "no save"
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, 0.5)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ck = read_learner_checkpoint(out, game)           # verified whole, or it raises
        version = ck.state["version"]
        assert json.loads((ck.folder / "state.json").read_text())["checkpoint"] == ck.number
        assert json.loads((ck.folder / "policy.json").read_text())["policy_version"] == version
        weights = torch.cat([p.detach().flatten() for p in ck.agent.net.parameters()])
        assert torch.all(weights == float(version)), "the weights and the state come from one save"
        assert ck.number > last
        last = ck.number


# -- corrupt, truncated, absurd: one line, exit 2 ----------------------------------------------------
def _hidden_1e8(folder):
    edit_meta(folder, hidden=1e8)


def _hidden_huge_int(folder):
    edit_meta(folder, hidden=60000)          # within the per-field bound, but a 14 GB net


def _truncated(folder):
    w = folder / "policy.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    reseal(folder)


def _garbage(folder):
    (folder / "policy.safetensors").write_bytes(os.urandom(4096))
    reseal(folder)


def _shapes_not_the_metadata(folder):
    edit_meta(folder, hidden=32)             # the weights hold a 16-wide net


def _nan_weights(folder):
    from safetensors.torch import load_file, save_file
    w = folder / "policy.safetensors"
    state = load_file(str(w))
    state["policy.bias"][0] = float("nan")
    save_file(state, str(w), metadata={"format": "arena-policy", "checkpoint": str(int(folder.name[5:]))})
    reseal(folder)


def _flipped_bytes(folder):
    w = folder / "policy.safetensors"
    data = bytearray(w.read_bytes())
    data[-8:] = b"\x7f" * 8
    w.write_bytes(bytes(data))               # the manifest is not resealed: its hash catches it


CASES = [
    (_hidden_1e8, "'hidden' must be an integer"),
    (_hidden_huge_int, "at most"),
    (_truncated, "truncated"),
    (_garbage, "corrupt"),
    (_shapes_not_the_metadata, "do not fit the net its metadata describes"),
    (_nan_weights, "NaN"),
    (_flipped_bytes, "sha256"),
]


@pytest.mark.parametrize("damage, needle", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_a_broken_checkpoint_is_one_line_and_exit_2_from_arena_run(tmp_path, damage, needle):
    root = policy(tmp_path)
    damage(ckpt.latest(root))
    with pytest.raises(ckpt.CheckpointError, match=needle):
        NeuralAgent.load(root, game=c4(), device="cpu")
    if damage in (_hidden_1e8, _truncated):   # the same through the real CLI (each run costs a start-up)
        p = arena("run", "connect4", "--agents", f"ckpt:{root},random", "--matches", "8", "--no-progress")
        one_line_exit_2(p, "cannot load", needle)


def test_a_pointer_that_leads_outside_its_folder_is_refused(tmp_path):
    root = policy(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    for latest in ("../elsewhere", "/etc", "ckpt-000001/../../elsewhere", 7):
        (root / "checkpoint.json").write_text(json.dumps({"format": "arena-checkpoint", "latest": latest,
                                                           "checkpoint": 1}))
        with pytest.raises(ckpt.CheckpointError, match="must name a ckpt-NNNNNN folder"):
            NeuralAgent.load(root, device="cpu")
    (root / "checkpoint.json").write_bytes(b"\0" * (1 << 20))
    with pytest.raises(ckpt.CheckpointError, match="too large"):
        NeuralAgent.load(root, device="cpu")


def test_absurd_metadata_in_an_old_single_file_policy_is_refused_before_allocating(tmp_path):
    folder = ckpt.latest(policy(tmp_path))
    shutil.copy(folder / "policy.safetensors", tmp_path / "old.safetensors")
    meta = json.loads((folder / "policy.json").read_text())
    meta["hidden"] = 1e8
    (tmp_path / "old.json").write_text(json.dumps(meta))
    p = arena("run", "connect4", "--agents", f"ckpt:{tmp_path / 'old'},random", "--matches", "8", "--no-progress")
    one_line_exit_2(p, "'hidden' must be an integer from 1 to")


# -- old runs keep loading ---------------------------------------------------------------------------
def _old_format(tmp_path: Path, name: str) -> Path:
    """A policy exactly as earlier versions wrote it: NAME.safetensors (no metadata) + NAME.json."""
    from safetensors.torch import save_file
    agent = NeuralAgent(c4(), seed=5, hidden=16, device="cpu")
    save_file({k: v.contiguous() for k, v in agent.net.state_dict().items()}, str(tmp_path / f"{name}.safetensors"))
    meta = agent.metadata()
    (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    return tmp_path / name


def test_old_single_file_policies_still_load(tmp_path):
    old = _old_format(tmp_path, "policy")
    a = NeuralAgent.load(old, game=c4(), device="cpu", greedy=True)
    b = NeuralAgent.load(tmp_path / "policy.safetensors", game=c4(), device="cpu", greedy=True)
    c = NeuralAgent.load(tmp_path, game=c4(), device="cpu", greedy=True)      # an old learner's folder
    g = c4(16)
    obs, mask = g.obs.reshape(32, 6, 7, 2), g.action_mask.reshape(32, 7)
    assert (a.act(obs, mask) == b.act(obs, mask)).all() and (a.act(obs, mask) == c.act(obs, mask)).all()
    p = arena("run", "connect4", "--agents", f"ckpt:{old},ckpt:{old}.safetensors", "--matches", "16",
              "--no-progress", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["results"][f"ckpt:{old}"]["games"] == 16


def test_an_old_learner_folder_resumes(tmp_path):
    from server.learn.learner import Learner

    cfg = preset("connect4", num_matches=8, batch_segments=8, horizon=4, hidden=16)
    out = tmp_path / "L0"
    out.mkdir()
    learner = Learner(cfg, "L0", out, gossip_bind=f"ipc://{tmp_path}/g0")
    try:
        learner.state.version, learner.state.updates = 9, 9
        folder = learner.save()
    finally:
        learner.close()
    # lay the files out as earlier versions did: loose in the learner's folder, no pointer
    for name in ("policy.safetensors", "policy.json", "state.json"):
        shutil.copy(folder / name, out / name)
    torch.save(torch.load(folder / "optimizer.pt", weights_only=True)["optimizer"], out / "optimizer.pt")
    shutil.rmtree(folder)
    (out / "checkpoint.json").unlink()
    logs = []
    again = Learner(cfg, "L0", out, gossip_bind=f"ipc://{tmp_path}/g1", resume=True, log=logs.append)
    try:
        assert again.state.version == 9
        assert any("before versioned checkpoints" in line for line in logs), logs
    finally:
        again.close()


# -- arena train --resume ----------------------------------------------------------------------------
def _run_dir(tmp_path: Path):
    """A run folder as arena train leaves it, with one learner that saved twice (versions 4 and 5)."""
    from server.learn.learner import Learner

    cfg = preset("connect4", num_matches=8, batch_segments=8, horizon=4, hidden=16)
    root = tmp_path / "run"
    out = root / "learners" / "L0"
    out.mkdir(parents=True)
    (root / "train.json").write_text(json.dumps({"arena": "connect4", "learners": 1, "workers": 1, "options": {},
                                                 "seed": 0, "config": cfg.to_dict()}))
    learner = Learner(cfg, "L0", out, gossip_bind=f"ipc://{tmp_path}/g")
    try:
        learner.state.version = 4
        older = learner.save()
        learner.state.version = 5
        newer = learner.save()
    finally:
        learner.close()
    return root, older, newer


@pytest.mark.parametrize("stale", ["state.json", "optimizer.pt"])
def test_resume_refuses_a_mismatched_set_with_one_line(tmp_path, stale):
    root, older, newer = _run_dir(tmp_path)
    # a file of version 4 beside the others of version 5, the manifest made to agree: the files' own
    # records of their checkpoint still disagree (what a kill between four renames used to leave)
    shutil.copy(older / stale, newer / stale)
    reseal(newer)
    with pytest.raises(ckpt.CheckpointError, match=f"mismatched set .*{stale} says 1"):
        read_learner_checkpoint(newer.parent, c4())
    p = arena("train", "connect4", "--learners", "1", "--out", str(root), "--resume", "--steps", "1000")
    one_line_exit_2(p, "arena train: --resume", "mismatched set", f"{stale} says 1")
    assert not (root / "learners" / "L0" / "ckpt-000003").exists(), "nothing was started or saved"


def test_resume_refuses_a_truncated_checkpoint_with_one_line(tmp_path):
    root, _, newer = _run_dir(tmp_path)
    w = newer / "policy.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    p = arena("train", "connect4", "--learners", "1", "--out", str(root), "--resume", "--steps", "1000")
    one_line_exit_2(p, "truncated")
    p = arena("learner", "connect4", "--out", str(root / "learners" / "L0"), "--resume",
              "--bind", f"ipc://{tmp_path}/g2")
    one_line_exit_2(p, "arena learner: --resume", "truncated")
