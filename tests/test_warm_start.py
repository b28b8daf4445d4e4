"""The warm start (serve.warm_start) and the result store that lets a restart reuse it (runs.result_store)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from atp_viz.records.results import RunResult
from atp_viz.runs import engine, result_store
from atp_viz.runs.settings import RunSettings
from atp_viz.serve.job_line import Line
from atp_viz.serve.warm_start import WarmStart

SMALL = dict(calib_samples=2, calib_seqlen=32, eval_samples=2, eval_seqlen=32)


@pytest.fixture
def tiny_runs(tiny_model_dir) -> list[RunSettings]:
    model = str(tiny_model_dir("llama"))
    return [RunSettings(model=model, allocation="atp", beta=round(0.01 * k, 3), seed=911, **SMALL)
            for k in range(12)]


@pytest.fixture
def store(tmp_path):
    result_store.enable(tmp_path / "results")
    yield tmp_path / "results"
    result_store.disable()


def test_the_warm_start_computes_its_runs_into_the_engine_cache(tiny_runs):
    engine.clear_results()
    warm = WarmStart(runs=tiny_runs[:3])
    warm.run(Line())
    assert warm.finished and warm.done == tiny_runs[:3] and not warm.failed
    for settings in tiny_runs[:3]:
        assert engine.cached_result(settings) is not None and warm.computed(settings)
        # The page's run does not measure the selection text; the warm start's answers it all the same.
        assert warm.computed(replace(settings, measure_selection=True)) == warm.computed(settings)
    assert engine.cached_result(tiny_runs[3]) is None and not warm.computed(tiny_runs[3])
    assert warm.progress() == "all 3 start-up runs done"


@pytest.mark.slow  # waits on a real job in the line: ~25 s on 2 cores
def test_the_warm_start_gives_way_to_a_job_in_the_line_and_resumes_after_it(tiny_runs):
    engine.clear_results()
    line = Line()
    warm = WarmStart(runs=tiny_runs)
    thread = threading.Thread(target=warm.run, args=(line,), daemon=True)
    thread.start()
    while not warm.done:
        time.sleep(0.01)
    person = line.join("a person", 10.0)
    time.sleep(0.3)  # a run in flight stops at its next block
    held = len(warm.done)
    time.sleep(1.5)
    assert len(warm.done) == held < len(tiny_runs), "the warm start ran while someone held the engine"
    line.leave(person)
    thread.join(timeout=120)
    assert warm.finished and warm.done == tiny_runs


def test_a_failing_run_is_logged_and_the_next_one_tried(tiny_runs, capsys):
    broken = replace(tiny_runs[0], model="/nonexistent/model/dir")
    warm = WarmStart(runs=[broken, tiny_runs[1]])
    warm.run(Line())
    assert warm.done == [tiny_runs[1]] and len(warm.failed) == 1
    assert "atp_viz: warm start:" in capsys.readouterr().out


def test_the_store_keeps_whole_results_of_the_embedded_model_on_the_builtin_text(tiny_runs, store):
    result = engine.run_pruning(tiny_runs[1]).result
    embedded = replace(tiny_runs[1], model="embedded")
    assert result_store.get(embedded) is None
    result_store.put(embedded, result)
    assert result_store.get(embedded) == result
    assert RunResult.from_json(result.to_json()) == result
    # A model or text the installation does not fix is never kept.
    assert not result_store.storable(tiny_runs[1])
    assert not result_store.storable(replace(embedded, text="notes.txt"))
    result_store.put(tiny_runs[1], result)
    assert len(list(store.glob("*.json"))) == 1
    # Other settings, another file; a damaged file is dropped, not served.
    assert result_store.get(replace(embedded, seed=912)) is None
    next(store.glob("*.json")).write_text("{not json", encoding="utf-8")
    assert result_store.get(embedded) is None and not list(store.glob("*.json"))


def test_the_store_keeps_the_newest_files_only(tiny_runs, store, monkeypatch):
    monkeypatch.setattr(result_store, "MAX_KEPT", 2)
    result = engine.run_pruning(tiny_runs[1]).result
    for seed in (1, 2, 3):
        result_store.put(replace(tiny_runs[1], model="embedded", seed=seed), result)
        time.sleep(0.02)  # distinct modification times
    assert len(list(store.glob("*.json"))) == 2
    assert result_store.get(replace(tiny_runs[1], model="embedded", seed=1)) is None
    assert result_store.get(replace(tiny_runs[1], model="embedded", seed=3)) == result


def test_the_key_holds_what_changes_the_numbers():
    key = result_store.fingerprint()
    assert len(key) == 16
    result_store.fingerprint.cache_clear()
    assert result_store.fingerprint() == key  # the same code and libraries, the same key


@pytest.mark.embedded
def test_a_restarted_engine_answers_the_embedded_models_runs_from_the_store(store):
    settings = RunSettings(model="embedded", beta=0.01, seed=913, **SMALL)
    first = engine.run_pruning(settings).result
    assert len(list(store.glob("*.json"))) == 1
    engine.clear_results()  # what a restart forgets
    assert engine.cached_result(settings) == first
    again = engine.run_pruning(settings).result
    assert again == first and again.timings == first.timings, "served from the store, not computed again"
    # ATP at β = 0 is the uniform run: one file serves both names, each labelled as asked.
    engine.run_pruning(replace(settings, beta=0.0, allocation="uniform"))
    engine.clear_results()
    assert engine.cached_result(replace(settings, beta=0.0)).allocation == "atp"
    assert len(list(store.glob("*.json"))) == 2
