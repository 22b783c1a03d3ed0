"""A replay file is data: it never chooses the code ``arena replay`` runs.

Attack: a recording whose header names ``/some/file.py:Game`` (or ``module:Game``) as its arena; the
file, once imported, leaves a marker. ``arena replay --verify`` (and drawing it) refuses with one line
and exit status 2, importing nothing. The user may name the code themselves (``--arena SPEC``) or say
they trust the file (``--trust``); then it replays.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arenas
from agents import make_agent
from server.play.match import MatchRunner
from server.spectator.replay import Recorder, ReplayError, load, replay

ROOT = Path(__file__).resolve().parents[2]


def arena_cli(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]), SDL_VIDEODRIVER="dummy")
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def hostile(tmp_path):
    """A real connect4 recording whose header names code that writes a marker when imported."""
    marker = tmp_path / "imported"
    body = textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")
        from arenas.connect4 import SPEC as Game
    """)
    (tmp_path / "game.py").write_text(body)
    (tmp_path / "gamemod.py").write_text(body)
    game = arenas.get("connect4").game(num_matches=4)
    runner = MatchRunner(game, [make_agent("random", game), make_agent("greedy", game)], ["random", "greedy"])
    runner.reset(3)
    rec = Recorder(runner, seed=3)
    runner.play(games=6, on_step=rec.on_step)
    clean = rec.save(tmp_path / "clean.npz")
    files = {}
    for name, spec in (("file", f"{tmp_path / 'game.py'}:Game"), ("module", "gamemod:Game")):
        with np.load(clean, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays["header"].tobytes())
        header["arena"] = spec
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        files[name] = tmp_path / f"{name}.npz"
        np.savez(files[name], **arrays)
    return {"marker": marker, "files": files, "file_spec": f"{tmp_path / 'game.py'}:Game"}


@pytest.mark.parametrize("kind", ["file", "module"])
@pytest.mark.parametrize("how", [["--verify"], ["--gif", "out.gif"], []])
def test_a_replay_naming_code_is_refused_in_one_line_and_nothing_runs(tmp_path, hostile, kind, how):
    p = arena_cli(tmp_path, "replay", str(hostile["files"][kind]), *how)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "not in the registry" in lines[0] and "--arena" in lines[0] and "--trust" in lines[0]
    assert not hostile["marker"].exists(), "the recording made arena replay import its code"


def test_listing_a_replay_that_names_code_runs_nothing(tmp_path, hostile):
    p = arena_cli(tmp_path, "replay", str(hostile["files"]["file"]), "--list")
    assert p.returncode == 0, p.stderr
    assert "match 0" in p.stdout and not hostile["marker"].exists()


def test_the_user_may_name_the_code_or_trust_the_file(tmp_path, hostile):
    p = arena_cli(tmp_path, "replay", str(hostile["files"]["file"]), "--verify", "--arena", "connect4")
    assert p.returncode == 0 and "ended exactly as recorded" in p.stdout, p.stderr
    assert not hostile["marker"].exists(), "--arena connect4: the file's code is not imported"
    p = arena_cli(tmp_path, "replay", str(hostile["files"]["file"]), "--verify", "--trust")
    assert p.returncode == 0 and "ended exactly as recorded" in p.stdout, p.stderr
    assert hostile["marker"].exists(), "--trust runs what the file names (the user said so)"


def test_the_library_refuses_too(hostile):
    rec = load(hostile["files"]["module"])
    with pytest.raises(ReplayError, match="not in the registry"):
        rec.new_game()
    with pytest.raises(ReplayError, match="not in the registry"):
        replay(rec.match(0))                 # a match alone: its arena name, no trust
    assert not hostile["marker"].exists()
    mismatched = load(hostile["files"]["module"], arena="battle")
    with pytest.raises(ReplayError, match="agents"):
        mismatched.new_game()
