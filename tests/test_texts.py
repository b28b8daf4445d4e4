import pytest
import torch

from atp_viz.base.errors import AtpError
from atp_viz.model.texts import calibration_windows, evaluation_windows, load_text, read_text_file


def test_builtin_calibration_is_the_first_half_and_shares_nothing_with_the_held_out_parts():
    calib = load_text("builtin", "calibration")
    held_out = load_text("builtin", "report") + load_text("builtin", "selection")
    assert len(calib) > 100_000 and len(held_out) > 100_000
    # Disjoint: no long passage of one appears in the other.
    for start in range(0, len(held_out) - 200, 2_000):
        assert held_out[start : start + 200] not in calib


def test_calibration_windows_reproducible_from_seed():
    stream = torch.arange(10_000)
    a = calibration_windows(stream, 5, 64, seed=1)
    b = calibration_windows(stream, 5, 64, seed=1)
    c = calibration_windows(stream, 5, 64, seed=2)
    assert a.shape == (5, 64) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all(a[:, 1:] - a[:, :-1] == 1)  # contiguous windows of the stream


def test_evaluation_windows_non_overlapping():
    stream = torch.arange(1000)
    w = evaluation_windows(stream, 3, 100)
    assert w.tolist()[1][0] == 100 and w.shape == (3, 100)
    assert evaluation_windows(stream, None, 100).shape == (10, 100)
    with pytest.raises(AtpError, match="fewer than the 11"):
        evaluation_windows(stream, 11, 100)


def test_too_short_for_calibration():
    with pytest.raises(AtpError, match="too short"):
        calibration_windows(torch.arange(50), 2, 64, 0)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty"), (b"\x00\x01binary\x00", "binary"), (b"caf\xe9 latin-1", "not valid UTF-8"),
     (b"  \n\t ", "whitespace")],
)
def test_bad_text_files(tmp_path, content, message):
    f = tmp_path / "t.txt"
    f.write_bytes(content)
    with pytest.raises(AtpError, match=message):
        read_text_file(str(f))


def test_huge_text_file_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ATP_VIZ_MAX_TEXT_MB", "0.001")
    f = tmp_path / "big.txt"
    f.write_text("word " * 1000)
    with pytest.raises(AtpError, match="ATP_VIZ_MAX_TEXT_MB"):
        read_text_file(str(f))


def test_missing_file_and_unknown_source():
    with pytest.raises(AtpError, match="not builtin, wikitext2, c4 or an existing file"):
        load_text("/no/such/file.txt", "calibration")
