"""Fixtures for every test."""
import pytest

from server.net.proc import reap_stale_dirs


@pytest.fixture(autouse=True)
def no_leftovers_of_earlier_tests():
    """Each test starts as on a clean machine: the temporary folders that processes SIGKILLed by earlier
    tests left behind are removed first (the next ``arena`` command would remove them and say so in one
    more stderr line, which tests that read a command's stderr exactly would then see)."""
    reap_stale_dirs()
    yield
