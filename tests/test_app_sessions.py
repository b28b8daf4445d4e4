"""Failures inside a run, several sessions at once, and Stop, against the live app.

Each gradio_client.Client is one browser-like session with its own history. Results are
checked from outside: what the server computes after a failure, a stop or another
session's run equals the same comparison run in this process on weights loaded from disk.
"""

from __future__ import annotations

import time

import pytest
from app_support import (
    TINY_SIZES,
    assert_good_run,
    assert_same_as_in_process,
    connect,
    prune,
    refusal,
    rows,
    save_nan_head,
    stop_once_running,
)

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


@pytest.fixture(scope="module")
def nan_model(tiny_model_dir, tmp_path_factory) -> str:
    return str(save_nan_head(tiny_model_dir("llama"), tmp_path_factory.mktemp("nan-head")))


def test_failed_and_stopped_runs_end_with_a_message_and_keep_the_history(app_server, tiny, nan_model):
    client = connect(app_server)
    earlier = rows(prune(client, tiny, 2001)[5])
    assert len(earlier) == 2

    refusal(lambda: prune(client, nan_model, 2002), "perplexity is not finite")
    stopped = client.submit(model="embedded", method="wanda", sparsity=0.7, beta=0.01, **TINY_SIZES, seed=2003,
                            text_file=None, log_scale=False, shown_run="ATP", api_name="/run_pruning")
    stop_once_running(client, stopped, "run", status_index=10)

    # A fresh seed and evaluation length: nothing below comes from a cache filled before
    # the stop, so the stopped model's weights are measured again.
    answer = prune(client, "embedded", 2004, beta=0.01, eval_seqlen=96)
    newest = assert_good_run(answer, 2004)
    now = rows(answer[5])
    assert len(now) == 4 and now[:2] == earlier
    assert_same_as_in_process(newest, "embedded", 2004, beta=0.01, eval_seqlen=96)


def test_two_sessions_pruning_at_once_each_get_their_own_results(app_server, tiny):
    sessions = {"a": connect(app_server), "b": connect(app_server)}
    seeds = {"a": [3001, 3003], "b": [3002, 3004]}
    # The second round measures perplexity at new lengths, so each session's dense
    # perplexity is measured again after prunes of the same shared model by both.
    eval_seqlens = [{"a": 64, "b": 64}, {"a": 48, "b": 40}]
    for round_ in range(2):
        jobs = {name: client.submit(model=tiny, method="wanda", sparsity=0.7, beta=0.1,
                                    **{**TINY_SIZES, "eval_seqlen": eval_seqlens[round_][name]},
                                    seed=seeds[name][round_],
                                    text_file=None, log_scale=False, shown_run="ATP", api_name="/run_pruning")
                for name, client in sessions.items()}
        answers = {name: job.result(timeout=120) for name, job in jobs.items()}
        for name, answer in answers.items():
            newest = assert_good_run(answer, seeds[name][round_])
            # Neither session sees the other's runs.
            assert [r["seed"] for r in rows(answer[5])] == [s for s in seeds[name][: round_ + 1] for _ in (0, 1)]
            if round_ == 1:
                assert_same_as_in_process(newest, tiny, seeds[name][1], eval_seqlen=eval_seqlens[1][name])


def test_stopping_one_sessions_search_lets_the_next_request_run(app_server, tiny):
    searcher, other = connect(app_server), connect(app_server)
    # 150 β on the grid of a 3-block model at S = 0.7: far longer than this test waits.
    search = searcher.submit(tiny, "wanda", 0.7, "grid", 2, 64, 2, 64, 4001, None, api_name="/sweep_beta")
    while len(search.outputs()) < 3:
        assert not search.done(), "the search ended before it could be stopped"
        time.sleep(0.1)
    waiting = other.submit(model=tiny, method="wanda", sparsity=0.7, beta=0.1, **{**TINY_SIZES, "eval_seqlen": 56},
                           seed=4002, text_file=None, log_scale=False, shown_run="ATP", api_name="/run_pruning")
    time.sleep(0.5)
    assert not waiting.done(), "one engine run at a time: the other session waits for the search"

    stop_once_running(searcher, search, "search", status_index=1)
    answer = waiting.result(timeout=120)
    assert_same_as_in_process(assert_good_run(answer, 4002), tiny, 4002, eval_seqlen=56)
    assert [r["seed"] for r in rows(answer[5])] == [4002, 4002]

    # The trials that finished before Stop stay in the searcher's history.
    streamed = rows(search.outputs()[-1][3])
    assert len(streamed) >= 3 and {r["seed"] for r in streamed} == {4001}
    after = rows(prune(searcher, tiny, 4003)[5])
    assert after[: len(streamed)] == streamed and [r["seed"] for r in after[len(streamed):]] == [4003, 4003]
