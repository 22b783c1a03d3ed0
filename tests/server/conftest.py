"""Fixtures shared by the server tests."""
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: small batches run fastest so, and on a loaded machine more
    threads only spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
