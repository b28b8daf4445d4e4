"""C4 calibration windows as the papers' code cuts them: one document each (pure, no download)."""

import random

import pytest
import torch

from atp_viz.base.errors import AtpError
from atp_viz.model.texts import calibration_set, document_windows

# Documents as token lists: document k holds the ids 1000k, 1000k + 1, ... so every token
# says which document and position it came from.
LENGTHS = [5, 40, 12, 300, 64, 65, 3, 128]
DOCUMENTS = [list(range(1000 * k, 1000 * k + n)) for k, n in enumerate(LENGTHS)]


def published_c4_windows(documents, count, seqlen, seed):
    """lib/data.py get_c4 of Wanda / SparseGPT / ATP, transcribed: random.seed(seed); per
    sample, draw documents until one is longer than seqlen, then a start in [0, len - seqlen - 1]."""
    random.seed(seed)
    windows = []
    for _ in range(count):
        while True:
            doc = documents[random.randint(0, len(documents) - 1)]
            if len(doc) > seqlen:
                break
        start = random.randint(0, len(doc) - seqlen - 1)
        windows.append(doc[start:start + seqlen])
    return windows


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("seqlen", [8, 64])
def test_windows_match_the_published_sampling(seed, seqlen):
    windows = document_windows(DOCUMENTS, 6, seqlen, seed)
    assert windows.dtype == torch.long and windows.shape == (6, seqlen)
    assert windows.tolist() == published_c4_windows(DOCUMENTS, 6, seqlen, seed)


def test_each_window_lies_inside_one_long_enough_document():
    windows = document_windows(DOCUMENTS, 40, 64, seed=3)
    for window in windows.tolist():
        doc = window[0] // 1000
        # Consecutive ids of one document: the window never crosses into another.
        assert window == list(range(window[0], window[0] + 64))
        assert LENGTHS[doc] > 64  # documents 3, 5 and 7 only
        # The last token is never used, as in the published code's start range.
        assert window[-1] - 1000 * doc <= LENGTHS[doc] - 2
    assert {w[0] // 1000 for w in windows.tolist()} <= {3, 5, 7}


def test_tokens_are_computed_only_for_drawn_documents():
    texts = [" ".join(["w"] * n) for n in LENGTHS]
    drawn = []

    def tokens(text):
        drawn.append(text)
        return [len(word) for word in text.split()]

    windows = document_windows(texts, 2, 64, seed=0, tokens=tokens)
    assert windows.shape == (2, 64)
    assert len(drawn) <= 2 * 100 and len(set(drawn)) <= len(texts)


def test_no_document_long_enough_is_refused_with_a_sentence():
    with pytest.raises(AtpError, match="no calibration document of more than 500 tokens"):
        document_windows(DOCUMENTS, 1, 500, seed=0)
    with pytest.raises(AtpError, match="no documents"):
        document_windows([], 1, 8, seed=0)


def test_c4_offline_says_so_in_one_sentence(monkeypatch):
    # The loader path: C4 needs the hub (or the datasets package); offline it refuses.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(AtpError, match="c4") as info:
        calibration_set(None, "c4", 2, 16, 0)
    assert "\n" not in str(info.value)
