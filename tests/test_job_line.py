"""The server's line of engine jobs (serve.job_line): order, one job per client, what a waiting client is told."""

from __future__ import annotations

import threading

import pytest

from atp_viz.base.errors import AtpError
from atp_viz.serve.job_line import ONE_JOB, Ahead, Line


def test_jobs_take_turns_in_arrival_order_and_a_client_holds_one_place():
    line = Line()
    first, second = line.join("a", 30.0), line.join("b", 20.0)
    with pytest.raises(AtpError, match="already have a run queued or running"):
        line.join("a", 5.0)
    assert line.wait_turn(first, timeout=0) and not line.wait_turn(second, timeout=0)
    line.leave(first)
    assert line.wait_turn(second, timeout=0)
    # Its place given back, the client may queue again; callers without a session are never refused.
    again = line.join("a")
    assert line.join("") is not line.join("")
    line.leave(second)
    assert line.wait_turn(again, timeout=0)


def test_a_waiting_client_is_told_the_jobs_ahead_and_their_estimates():
    line = Line()
    running = line.join("a", 30.0)
    line.join("b", 20.0), line.join("c")
    mine = line.join("d", 10.0)
    assert line.wait_turn(running, timeout=0)  # its clock starts
    ahead = line.ahead(mine)
    assert (ahead.jobs, ahead.unknown) == (3, 1)
    assert 49.0 < ahead.seconds <= 50.0  # the running job's time left, plus the whole of the waiting one's
    assert ahead.text() == "3 runs ahead of yours (about 50 s, plus 1 of unknown length)"
    assert line.ahead(running) == Ahead(0, 0.0, 0)
    assert Ahead(1, 0.0, 1).text() == "1 run ahead of yours (their length is not known yet)"
    assert Ahead(2, 150.0, 0).text() == "2 runs ahead of yours (about 2 min)"


def test_leaving_wakes_the_next_job_and_an_empty_line_is_idle():
    line = Line()
    first, second = line.join("a"), line.join("b")
    assert line.busy() and not line.wait_idle(timeout=0)
    turned = threading.Event()

    def wait() -> None:
        if line.wait_turn(second, timeout=10):
            turned.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    line.leave(first)
    waiter.join(timeout=10)
    assert turned.is_set()
    line.leave(second)
    line.leave(second)  # leaving twice (a handler's finally after an error) is harmless
    assert not line.busy() and line.wait_idle(timeout=0)


def test_the_refusal_is_one_sentence():
    assert "\n" not in ONE_JOB and ONE_JOB.count(".") == 0


def test_work_done_by_a_job_ahead_costs_nothing_in_the_wait_told():
    line = Line()
    line.join("a", 30.0, frozenset({"uniform", "atp 0.003"}))
    line.join("b", 30.0, frozenset({"uniform", "atp 0.003"}))  # the same runs: cached once a's are done
    line.join("c", 20.0, frozenset({"uniform", "atp 0.005"}))  # uniform is shared, its ATP run is not
    mine = line.join("d", 10.0)
    ahead = line.ahead(mine)
    assert (ahead.jobs, ahead.seconds, ahead.unknown) == (3, 50.0, 0)


def test_a_tab_waiting_in_the_line_says_its_place_on_its_progress_bar():
    """Compare, Search, Beyond, export and single-block runs wait through ``stoppable``: their
    progress bar says what is ahead until their turn comes."""
    from atp_viz.serve.job_line import LINE
    from atp_viz.ui.adapters import stoppable

    ahead = LINE.join("someone else", 30.0)
    said: list[str] = []
    threading.Timer(1.5, LINE.leave, (ahead,)).start()
    with stoppable(None, lambda fraction, desc: said.append(desc)) as flag:
        assert not flag.is_set()
    assert said and said[0].startswith("queued: 1 run ahead of yours (about")
