"""The Prune tab's Generate (``ui.generate_section``) called as gradio calls it, in this process,
on a tiny model: what it shows, what the History JSON carries, and its refusals in one sentence."""

from __future__ import annotations

import json

import gradio as gr
import pytest
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.ui import generate_section, history

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "The result of a function call is"


@pytest.fixture(scope="module")
def llama(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


def call(model: str, prompt: str = PROMPT, chat: bool = False, tokens=8, frame=None) -> list[dict]:
    answers = generate_section.generate(model, "wanda", 0.7, 0.2, 2, 64, 2, 64, 0, None, prompt, chat, tokens,
                                        history.empty() if frame is None else frame)
    return list(answers)


def test_generate_shows_three_texts_and_the_history_json_carries_them(llama):
    from atp_viz.runs import engine
    from atp_viz.ui.shared import run_settings

    settings = run_settings(llama, "wanda", 0.7, 2, 64, 2, 64, 0, None, 0.2)
    engine.run_pruning(settings)  # ATP pruned before (as Prune does): its row gets the generation
    last = call(llama)[-1]
    said = last["said"]
    assert [c.model for c in said.continuations] == ["dense", "uniform", "atp"]
    view = last["view"]
    assert all(f"id='said-{name}'" in view for name in ("dense", "uniform", "atp"))
    assert "agreement" in view and "mean KL" in view and "perplexity" in view
    assert last["status"].startswith("✔ done")
    frame = last["history_frame"]
    assert len(frame) == 2
    for path in history.json_files(frame):
        saved = json.loads(open(path, encoding="utf-8").read())
        assert saved["generation"]["continuations"]["dense"]["token_ids"] == said.dense.token_ids
        assert saved["generation"]["continuations"]["atp"]["scores"]["kl"] == said.pruned[1].scores.kl
    # Again: the same rows, their JSON replaced by the newer generation.
    again = call(llama, prompt="A list holds", frame=frame)[-1]["history_frame"]
    assert len(again) == 2
    assert all(json.loads(open(p).read())["generation"]["prompt"] == "A list holds" for p in history.json_files(again))


@pytest.mark.parametrize("prompt, chat, tokens, message", [
    ("", False, 8, "the prompt is empty"),
    (PROMPT, False, 0, "the number of new tokens must be"),
    (PROMPT, False, 10_000, "at most"),
    (PROMPT * 200, False, 8, "context window"),
    (PROMPT, True, 8, "no chat template"),
])
def test_bad_input_is_one_sentence(llama, prompt, chat, tokens, message):
    with pytest.raises(gr.Error, match=message) as refused:
        call(llama, prompt, chat, tokens)
    assert "\n" not in str(refused.value)


def test_a_public_server_bounds_the_prompt(llama, monkeypatch):
    monkeypatch.setenv("ATP_VIZ_PUBLIC", "1")
    monkeypatch.setenv("ATP_VIZ_MODEL_DIRS", llama)
    monkeypatch.setenv("ATP_VIZ_MAX_PROMPT_CHARS", "20")
    with pytest.raises(gr.Error, match="over this public server's limit of 20"):
        call(llama, PROMPT)
    assert call(llama, "A list holds")[-1]["status"].startswith("✔ done")
