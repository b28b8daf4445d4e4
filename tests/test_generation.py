"""What the pruned model says (``generation``, ``continuations``, ``kept_weights``) on tiny
random models: the continuations are transformers' ``generate`` on the saved pruned model,
token for token; the scores are the direct computation on the same logits; bad input is
refused in one sentence."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from thread_support import one_torch_thread  # noqa: F401 (a fixture)

from atp_viz.base.errors import AtpError, Cancelled
from atp_viz.experiments import generation
from atp_viz.experiments.generation import teacher_forced_scores
from atp_viz.model.loading import load_model
from atp_viz.model.weights import PrunedLayer, checksum
from atp_viz.records.continuations import Generation, TokenScores, first_divergence
from atp_viz.runs import engine
from atp_viz.runs.kept_weights import KEPT, pack_layer, unpack_layer
from atp_viz.runs.settings import RunSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "The result of a function call is"


def tiny_settings(model: str, **changes) -> RunSettings:
    return replace(RunSettings(model=model, method="wanda", sparsity=0.7, allocation="atp", beta=0.2,
                               calib_samples=2, calib_seqlen=64, eval_samples=2, eval_seqlen=64), **changes)


@pytest.fixture(scope="module")
def llama(tiny_model_dir) -> str:
    return str(tiny_model_dir("llama"))


def saved_generate(settings: RunSettings, out_dir, ids: list[int], new_tokens: int) -> list[int]:
    """``generate`` on the model ``prune --save`` writes (engine.save_pruned), reloaded as plain transformers."""
    from transformers import AutoModelForCausalLM

    outcome = engine.run_pruning(replace(settings, measure_ppl=False), keep_weights=True)
    engine.save_pruned(settings, outcome.pruned, out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=new_tokens)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_each_continuation_is_generate_on_the_saved_pruned_model(llama, tmp_path, method):
    settings = tiny_settings(llama, method=method)
    said = generation.generate_pair(settings, PROMPT, chat=False, max_new_tokens=12)
    loaded = load_model(llama)
    assert said.prompt_ids == loaded.tokenizer(PROMPT)["input_ids"]
    assert [c.model for c in said.continuations] == ["dense", "uniform", "atp"]
    for continuation, run in zip(said.pruned, generation.pair_runs(settings)):
        expected = saved_generate(run.settings, tmp_path / continuation.model, said.prompt_ids, 12)
        assert continuation.token_ids == expected
        assert continuation.text == loaded.tokenizer.decode(expected, skip_special_tokens=True)
    from transformers import AutoModelForCausalLM

    dense = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32)
    out = dense.generate(torch.tensor([said.prompt_ids]), do_sample=False, max_new_tokens=12)
    assert said.dense.token_ids == out[0, len(said.prompt_ids):].tolist()
    # The pruned runs really say something else than the dense model (else the test proves little).
    assert any(c.token_ids != said.dense.token_ids for c in said.pruned)


def test_kept_weights_and_weights_pruned_again_give_the_same_continuation(llama):
    settings = tiny_settings(llama, seed=3)
    engine.clear_results()
    KEPT.clear()
    engine.run_pruning(settings)  # the pair's ATP run, as Prune runs it: its weights are kept
    assert generation.to_prune(settings) == [generation.pair_runs(settings)[0].settings]
    kept = generation.generate_pair(settings, PROMPT, chat=False, max_new_tokens=8)
    assert generation.to_prune(settings) == []
    KEPT.clear()
    again = generation.generate_pair(settings, PROMPT, chat=False, max_new_tokens=8)
    assert [c.token_ids for c in kept.continuations] == [c.token_ids for c in again.continuations]


def test_packing_is_exact_bit_for_bit():
    torch.manual_seed(0)
    weight = torch.randn(7, 13)
    weight[weight.abs() < 0.5] = 0.0
    weight[0, 0] = -0.0  # a negative zero is a value of its own, kept as it was
    for layer in (PrunedLayer(weight=weight), PrunedLayer(zeroed=weight == 0)):
        back = unpack_layer(pack_layer(layer))
        if layer.weight is not None:
            assert torch.equal(back.weight.view(torch.int32), weight.view(torch.int32))
        else:
            assert torch.equal(back.zeroed, layer.zeroed)


def test_the_scores_are_the_direct_computation_on_the_same_logits():
    torch.manual_seed(1)
    dense, pruned = torch.randn(6, 50), torch.randn(6, 50)
    tokens = dense.argmax(-1).tolist()
    tokens[2] = 7
    scores = teacher_forced_scores(dense, pruned, tokens)
    for i in range(6):
        p = torch.softmax(dense[i].double(), -1)
        q = torch.softmax(pruned[i].double(), -1)
        assert scores.kl[i] == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-9, abs=1e-12)
        assert scores.dense_token_prob[i] == pytest.approx(float(q[tokens[i]]), rel=1e-9)
        assert scores.agrees[i] == (int(pruned[i].argmax()) == tokens[i])
    assert scores.mean_kl == pytest.approx(sum(scores.kl) / 6)
    assert scores.agreement == sum(scores.agrees) / 6
    same = teacher_forced_scores(dense, dense, dense.argmax(-1).tolist())
    assert same.agreement == 1.0 and max(abs(k) for k in same.kl) < 1e-12


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2, 3], [1, 2]) == 2
    assert first_divergence([1], [1, 2]) == 1


def test_the_scores_of_a_generation_match_its_own_logits(llama):
    settings = tiny_settings(llama)
    said = generation.generate_pair(settings, PROMPT, chat=False, max_new_tokens=10)
    loaded = load_model(llama)
    dense_logits = generation.next_token_logits(loaded.model, said.prompt_ids, said.dense.token_ids)
    # Teacher-forced, the dense model's own top-1 is its greedy token at every position.
    assert dense_logits.argmax(-1).tolist() == said.dense.token_ids
    for continuation in said.pruned:
        assert len(continuation.scores.kl) == len(said.dense.token_ids)
        assert all(0.0 <= p <= 1.0 for p in continuation.scores.dense_token_prob)
        assert all(k >= -1e-9 and math.isfinite(k) for k in continuation.scores.kl)
        assert continuation.first_divergence == first_divergence(said.dense.token_ids, continuation.token_ids)
    back = Generation.from_json(said.to_json())
    assert back.to_json() == said.to_json()
    assert isinstance(back.pruned[0].scores, TokenScores)


def test_the_dense_model_is_left_as_loaded(llama):
    loaded = load_model(llama)
    before = checksum(loaded.model)
    generation.generate_pair(tiny_settings(llama), PROMPT, chat=False, max_new_tokens=4)
    assert checksum(loaded.model) == before
    flags = iter(range(100))
    with pytest.raises(Cancelled):
        generation.generate_pair(tiny_settings(llama), PROMPT, chat=False, max_new_tokens=20,
                                 cancelled=lambda: next(flags) > 3)
    assert checksum(loaded.model) == before


@pytest.mark.parametrize("prompt, chat, tokens, message", [
    ("", False, 10, "the prompt is empty"),
    ("   \n", False, 10, "the prompt is empty"),
    (PROMPT, False, 0, "the number of new tokens must be"),
    (PROMPT, False, generation.MAX_NEW_TOKENS + 1, "at most"),
    (PROMPT, False, 2.5, "the number of new tokens must be"),
    (PROMPT * 200, False, 10, "exceed the model's context window of 512 tokens"),
    (PROMPT, True, 10, "has no chat template"),
])
def test_bad_input_is_refused_in_one_sentence(llama, prompt, chat, tokens, message):
    with pytest.raises(AtpError, match=message) as refused:
        generation.generate_pair(tiny_settings(llama), prompt, chat=chat, max_new_tokens=tokens)
    assert "\n" not in str(refused.value)


def test_the_chat_template_wraps_the_prompt_as_a_user_turn(tiny_tokenizer):
    tokenizer = tiny_tokenizer
    template = getattr(tokenizer, "chat_template", None)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    try:
        ids = generation.prompt_ids(tokenizer, "hello", chat=True)
    finally:
        tokenizer.chat_template = template
    assert tokenizer.decode(ids) == "<user>hello<assistant>"
