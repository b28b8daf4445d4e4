"""One torch thread for tests of tiny models: their matrix products are too small to share, and
a second thread makes each of them wait for it (a run of the 3-block model took 20x as long on a
busy 2-core host). A module imports the fixture and takes it, before its module fixtures run, with
``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
