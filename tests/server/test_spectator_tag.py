"""The spectator draws tag: pixels of known states (bodies, y upwards, the ±1 square, velocity lines, the
touch ring), the square widening to fit, the status lines, and live positions from a ``SlotView`` sent
through a ``frame`` message. pygame runs on SDL's dummy video driver."""
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"   # before pygame is imported anywhere: no real window in tests
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest

import arenas
from server.spectator import render as R

pygame = pytest.importorskip("pygame")
SIZE = (656, 738)      # R.default_size("tag", ...): a 640-pixel square under the status lines


def _pixel(surface, xy):
    return tuple(surface.get_at(xy))[:3]


def _draw(snapshot, size=SIZE, info=None):
    surface = pygame.Surface(size)
    R.render("tag", snapshot, surface, info or {})
    return surface


def _snapshot(**changes):
    """3 adversaries and 1 good agent (seats 0..3), 2 landmarks, with mpe2's radii."""
    snap = {
        "pos": np.array([[0.5, 0.5], [-0.4, -0.5], [0.0, -1.2], [-0.5, -0.5]]),
        "vel": np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
        "landmarks": np.array([[0.0, 0.8], [-0.9, 0.6]]),
        "size": np.array([0.075, 0.075, 0.075, 0.05, 0.2, 0.2]),
        "team": np.array([0, 0, 0, 1]),
        "step": 14,
        "touches": 3,
    }
    snap.update(changes)
    return snap


def test_default_size_is_a_square_under_the_status_lines():
    snap = _snapshot()
    assert R.default_size("tag", snap) == SIZE
    x0, y0, cell = R.board_geometry(SIZE, R.TAG_CELLS, R.TAG_CELLS)
    assert cell * R.TAG_CELLS == 640 and y0 >= R.BAR
    assert R.world_to_pixel(snap, SIZE, 0.0, 0.0) == (x0 + 320, y0 + 320), "the origin in the middle"
    assert R.world_to_pixel(snap, SIZE, -1.5, 1.5) == (x0, y0), "±1.5 fills the square, y upwards"


def test_tag_bodies_landmarks_square_velocity_and_touch_ring():
    snap = _snapshot()
    s = _draw(snap)
    at = lambda x, y: R.world_to_pixel(snap, SIZE, x, y)
    scale = 640 / 3.0
    # y is upwards: the adversary at (0.5, 0.5) is up and to the right of the origin
    assert at(0.5, 0.5)[0] > at(0, 0)[0] and at(0.5, 0.5)[1] < at(0, 0)[1]
    assert _pixel(s, at(0.5, 0.5)) == R.ADVERSARY and _pixel(s, at(0.0, -1.2)) == R.ADVERSARY
    assert _pixel(s, at(0.5, -0.5)) == R.FLOOR and _pixel(s, at(-0.5, 0.5)) == R.FLOOR, "nothing mirrored"
    assert _pixel(s, at(-0.5, -0.5)) == R.GOOD_AGENT, "a good agent is drawn over the adversary touching it"
    assert _pixel(s, at(0.0, 0.8)) == R.LANDMARK and _pixel(s, at(-0.9, 0.6)) == R.LANDMARK
    assert _pixel(s, at(0.0, 0.8 + 0.18)) == R.LANDMARK and _pixel(s, at(0.0, 0.8 + 0.23)) == R.FLOOR, \
        "a landmark's radius is 0.2"
    # the ±1 square: good agents are penalised beyond 0.9
    assert _pixel(s, at(1.0, 0.0)) == R.BOUNDARY and _pixel(s, at(0.0, -1.0)) == R.BOUNDARY
    assert _pixel(s, at(1.1, 0.0)) == R.FLOOR
    # outside the square, the background
    x0, y0, _ = R.board_geometry(SIZE, R.TAG_CELLS, R.TAG_CELLS)
    assert _pixel(s, (x0 - 2, y0 + 320)) == R.BACKGROUND
    # a moving adversary's velocity line (1 unit/s: 0.3 to the right); none for one at rest
    assert _pixel(s, at(0.5 + 0.15, 0.5)) == R.VELOCITY and _pixel(s, at(0.5 + 0.35, 0.5)) == R.FLOOR
    assert _pixel(s, at(0.0 + 0.15, -1.2)) == R.FLOOR
    # the touched good agent (adversary 1 is 0.1 away, under 0.075 + 0.05) is ringed on its far side
    r = round(0.05 * scale)
    ring = max(2, round(0.012 * scale))
    cx, cy = at(-0.5, -0.5)
    assert _pixel(s, (cx - r - ring // 2 - 1, cy)) == R.TOUCH_RING
    assert _pixel(s, (cx, cy + r + ring // 2)) == R.TOUCH_RING
    assert list(R.tag_touching(snap)) == [False, False, False, True]


def test_an_untouched_good_agent_has_no_ring():
    snap = _snapshot(pos=np.array([[0.5, 0.5], [0.2, -0.5], [0.0, -1.2], [-0.5, -0.5]]))
    s = _draw(snap)
    cx, cy = R.world_to_pixel(snap, SIZE, -0.5, -0.5)
    r = round(0.05 * 640 / 3.0)
    assert _pixel(s, (cx, cy)) == R.GOOD_AGENT and _pixel(s, (cx - r - 2, cy)) == R.FLOOR
    assert not R.tag_touching(snap).any()


def test_the_square_widens_to_fit_a_body_beyond_it():
    assert R.tag_extent(_snapshot()) == 1.5
    far = _snapshot(pos=np.array([[2.2, 0.0], [-0.4, -0.5], [0.0, -1.2], [-0.5, -0.5]]))
    assert R.tag_extent(far) == 2.5, "2.2 + 0.075 rounded up to a multiple of 0.5"
    s = _draw(far)
    x0, _, _ = R.board_geometry(SIZE, R.TAG_CELLS, R.TAG_CELLS)
    x, y = R.world_to_pixel(far, SIZE, 2.2, 0.0)
    assert x0 < x < x0 + 640 and _pixel(s, (x, y)) == R.ADVERSARY
    assert R.world_to_pixel(far, SIZE, 2.5, 0.0)[0] == x0 + 640


def test_status_lines_name_the_sides_step_of_max_cycles_and_touches():
    snap = _snapshot()
    lines = [t for t, _ in R.status_lines("tag", snap, {"match": "2 of 8", "agents": ["greedy", "random"],
                                                        "options": {"max_cycles": 25}})]
    assert "tag" in lines[0] and "greedy (adversaries) vs random (good)" in lines[0] and "step 14" in lines[0]
    assert lines[1] == "step 14 / 25 - touches 3 - 1 good agent touched now"
    calm = _snapshot(pos=np.array([[0.5, 0.5], [0.2, -0.5], [0.0, -1.2], [-0.5, -0.5]]), touches=0)
    assert R.status_lines("tag", calm, {})[1][0] == "step 14 - touches 0"
    assert R.describe_result("tag", 0, ["greedy", "random"]) == "adversaries (greedy) wins"
    assert R.describe_result("tag", 1) == "good wins"


def _uncovered(snap, size):
    """Agents whose centre pixel no agent drawn after them covers (good agents are drawn last)."""
    order = sorted(range(len(snap["team"])), key=lambda j: int(snap["team"][j]))
    _, _, scale, *_ = R._tag_frame(snap, size)
    out = []
    for i, j in enumerate(order):
        cj = np.array(R.world_to_pixel(snap, size, *snap["pos"][j]))
        if all(np.hypot(*(cj - R.world_to_pixel(snap, size, *snap["pos"][k]))) > snap["size"][k] * scale + 2
               for k in order[i + 1:]):
            out.append(j)
    return out


def _random_actions(game, rng):
    if game.continuous_actions:
        return rng.random(game.actions.shape, dtype=np.float32)
    return rng.integers(0, 5, size=game.actions.shape)


@pytest.mark.parametrize("continuous", [False, True])
def test_live_slot_view_positions_through_a_frame_message_draw_every_agent(continuous):
    from server.spectator.publisher import SlotView, frame_message, frames_of, pack, unpack

    game = arenas.make("tag", num_matches=3, seed=4, continuous_actions=continuous, max_cycles=20)
    view = SlotView(game, 1)
    rng = np.random.default_rng(0)
    shown, finals = view.frames(), []
    for _ in range(45):                             # two whole matches and a bit
        game.step(_random_actions(game, rng))
        touches = int(game.ep_touches[1])           # the episode's so far (0 after a restart)
        *ended, (now, extra) = view.advance(game)
        live = game.snapshot(1)
        assert not extra and all(np.array_equal(now[k], live[k]) for k in live), "the copy shows the live state"
        assert now["touches"] == touches
        finals += ended
        shown += [*ended, (now, extra)]
    assert len(finals) == 2
    for snap, extra in finals:
        assert extra["ended"] and snap["step"] == 20
        assert extra["winner"] == (0 if snap["touches"] > 0 else 1), "adversaries win by a touch"
    # over the wire and drawn: the decoded positions draw exactly as the originals
    for run in (shown[:20], shown[20:21]):
        _, msg = unpack(pack(b"f/0/1/", frame_message(run, {"slot": 1})))
        decoded = frames_of(msg)
        for (orig, _), (snap, _) in zip(run, decoded):
            info = {"options": game.options, "agents": ["greedy", "random"]}
            a, b = _draw(orig, info=info), _draw(snap, info=info)
            assert np.array_equal(R.surface_pixels(a), R.surface_pixels(b))
            for j in _uncovered(snap, SIZE):
                xy = R.world_to_pixel(snap, SIZE, *snap["pos"][j])
                assert _pixel(b, xy) == (R.ADVERSARY, R.GOOD_AGENT)[snap["team"][j]], f"agent {j} in its colour"


def test_a_tag_frame_uses_only_the_named_colours_so_a_gif_keeps_it_exactly():
    s = _draw(_snapshot(), info={"agents": ["greedy", "random"], "options": {"max_cycles": 25}, "note": "a note"})
    pixels = R.surface_pixels(s).reshape(-1, 3)
    palette, named = R._palette()
    colours = {tuple(int(v) for v in c) for c in np.unique(pixels, axis=0)}
    assert colours <= {tuple(int(v) for v in c) for c in palette[:named]}, "aliasing-free: no blended pixels"
    assert {R.ADVERSARY, R.GOOD_AGENT, R.LANDMARK, R.BOUNDARY, R.TOUCH_RING, R.VELOCITY} <= colours
