"""Records batches of results into a league until it is killed: the subject of test_store's kill -9 test.

Usage: python tests/league/record_loop.py LEAGUE_DIR ARENA TAG. Prints "recorded" once its first batch
is committed. Every batch also resends five results of the previous one (a retry after a lost reply,
which must count once), and every fifth batch adds a snapshot file and its row.
"""
import itertools
import random
import sys

from server.league import MAIN
from server.league.store import LeagueStore


def main() -> None:
    folder, arena, tag = sys.argv[1:4]
    rng = random.Random(tag)
    with LeagueStore.open(folder, arena) as store:
        names = [m.name for m in store.members() if m.kind != "snapshot"]
        main_agent = next(m.name for m in store.members() if m.kind == MAIN)
        previous: list = []
        for i in itertools.count():
            batch = [(f"{tag}-{i}-{j}", *rng.sample(names, 2), rng.choice((0, 0.5, 1)), rng.randrange(1, 60))
                     for j in range(20)]
            store.record(batch + previous[:5], steps={main_agent: 100 * i})
            previous = batch
            if i % 5 == 4:
                store.add_snapshot(main_agent, f"{main_agent}@{tag}-{i}", rng.randbytes(4096), steps=100 * i)
            if i == 0:
                print("recorded", flush=True)


if __name__ == "__main__":
    main()
