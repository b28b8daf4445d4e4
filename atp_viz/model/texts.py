"""Text sources and the token windows cut from them.

Every source has three pairwise disjoint parts (``PARTS``):

- **calibration**: the windows the pruners collect statistics on;
- **selection**: the text a β search chooses β on;
- **report**: the text whose perplexity a run reports (what was "evaluation" before the
  selection part existed: the first windows are the same tokens as then).

Sources: ``builtin`` (Python's own documentation, in every CPython) and a path to a UTF-8
file are cut at paragraph boundaries: the first half is calibration (unchanged since
before the selection part), and the second half is halved again, its first half the
report part and its second half the selection part. ``wikitext2`` and ``c4`` come through
``datasets`` (online only): WikiText-2 train / validation / test; C4 train shard 0 for
calibration, and validation shard 0's first 20,000 documents (report) and the next 20,000
(selection).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from ..base.bounded_cache import BoundedCache
from ..base.errors import AtpError

BUILTIN = "builtin"
PARTS = ("calibration", "selection", "report")
# C4 validation documents per held-out part: report is the first block, selection the next.
C4_DOCUMENTS = 20_000
# Documents drawn, per window, before giving up on finding one long enough.
MAX_DOCUMENT_DRAWS = 10_000

Document = TypeVar("Document")


def max_text_bytes() -> int:
    return int(float(os.environ.get("ATP_VIZ_MAX_TEXT_MB", "20")) * 2**20)


def load_text(source: str, part: str) -> str:
    """The text of ``part`` (one of ``PARTS``) of ``source``."""
    if part not in PARTS:
        raise ValueError(part)
    source = (source or "").strip()
    if source == BUILTIN:
        return _cut(_builtin_text(), part)
    if source == "wikitext2":
        return _wikitext2(part)
    if source == "c4":
        return _c4(part)
    return _cut(read_text_file(source), part)


def _builtin_text() -> str:
    from pydoc_data.topics import topics

    # Several topics repeat whole paragraphs of others; keep each paragraph once so the
    # calibration and evaluation halves share no passage.
    seen: set[str] = set()
    paragraphs = []
    for key in sorted(topics):
        for paragraph in topics[key].split("\n\n"):
            if paragraph.strip() and paragraph not in seen:
                seen.add(paragraph)
                paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _halves(text: str) -> tuple[str, str]:
    # Cut at a paragraph boundary near the middle so no sentence is shared.
    middle = len(text) // 2
    cut = text.find("\n\n", middle)
    cut = middle if cut < 0 else cut
    return text[:cut], text[cut:]


def _cut(text: str, part: str) -> str:
    """calibration | report | selection: the first half, then the second half halved."""
    calibration, held_out = _halves(text)
    if part == "calibration":
        return calibration
    report, selection = _halves(held_out)
    return report if part == "report" else selection


_UTF16_32_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
                  b"\xfe\xff": "UTF-16"}


def read_text_file(path: str) -> str:
    """A user's text file: must exist, be small enough, not binary, and UTF-8."""
    file = Path(path)
    try:
        regular = file.is_file()
    except (OSError, ValueError):  # a name too long to look up, or holding a NUL
        regular = False
    if not regular:
        raise AtpError(f"text source {path!r} is not builtin, wikitext2, c4 or an existing file")
    limit = max_text_bytes()
    try:
        # Read rather than trust the size the file system reports: files under /proc say 0.
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise AtpError(f"cannot read the text file {file.name!r}: {exc.strerror}") from None
    if not data:
        raise AtpError(f"text file {file.name!r} is empty")
    if len(data) > limit:
        size = file.stat().st_size
        shown = f"{size / 2**20:.1f} MiB, over" if size > limit else "larger than"
        raise AtpError(f"text file {file.name!r} is {shown} the {limit / 2**20:.0f} MiB limit "
                       "(set ATP_VIZ_MAX_TEXT_MB to change it)")
    encoding = _wide_encoding(data)
    if encoding:
        raise AtpError(f"text file {file.name!r} is {encoding} text, not UTF-8: save it as UTF-8")
    if b"\x00" in data:
        raise AtpError(f"text file {file.name!r} looks binary (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AtpError(f"text file {file.name!r} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise AtpError(f"text file {file.name!r} holds only whitespace")
    return text


def _wide_encoding(data: bytes) -> str | None:
    """"UTF-16" or "UTF-32" when ``data`` reads as such (a byte-order mark, or the NUL bytes
    of mostly ASCII text at every other or every fourth byte), else None."""
    for bom, name in _UTF16_32_BOMS.items():
        if data.startswith(bom):
            return name
    sample = data[:4096]
    for name, period in (("UTF-32", 4), ("UTF-16", 2)):
        if len(sample) >= 2 * period and sample.count(0) >= len(sample) * (period - 1) / period * 0.9:
            columns = [sample[i::period] for i in range(period)]
            if sum(column.count(0) >= 0.9 * len(column) for column in columns) == period - 1:
                return name
    return None


def _load_dataset(source: str, *args, **kwargs):
    """``datasets.load_dataset(*args)`` for the text source ``source`` (the name messages use)."""
    try:
        import datasets
    except ImportError:
        raise AtpError(f"text source {source!r} needs the 'datasets' package (pip install datasets) "
                       "and a network connection") from None
    try:
        return datasets.load_dataset(*args, **kwargs)
    except Exception as exc:  # datasets raises many types for network failures
        raise AtpError(f"cannot download the text source {source!r} through datasets (offline?): "
                       f"{str(exc).splitlines()[0]}") from None


def _wikitext2(part: str) -> str:
    split = {"calibration": "train", "selection": "validation", "report": "test"}[part]
    data = _load_dataset("wikitext2", "wikitext", "wikitext-2-raw-v1", split=split)
    return "\n\n".join(data["text"])


def _c4_shard(part: str):
    # The shards the paper's reference code uses: train shard 0 for calibration.
    if part == "calibration":
        return _load_dataset("c4", "allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"},
                             split="train")
    return _load_dataset("c4", "allenai/c4", data_files={"validation": "en/c4-validation.00000-of-00008.json.gz"},
                         split="validation")


def _c4(part: str) -> str:
    first = C4_DOCUMENTS if part == "selection" else 0
    return "\n\n".join(_c4_shard(part)["text"][first : first + C4_DOCUMENTS])


def document_windows(documents: Sequence[Document], count: int, seqlen: int, seed: int,
                     tokens: Callable[[Document], Sequence[int]] = lambda document: document) -> torch.Tensor:
    """``count`` windows of ``seqlen`` tokens, each cut from one document, as the Wanda /
    SparseGPT / ATP ``lib/data.py`` cuts C4: with Python's ``random`` seeded by ``seed``,
    draw documents until one has more than ``seqlen`` tokens, then a random start inside
    it. ``tokens`` turns a document into its token ids (called only on the ones drawn)."""
    if len(documents) == 0:
        raise AtpError("the calibration text has no documents")
    draw = random.Random(int(seed))
    windows = []
    for _ in range(count):
        for _attempt in range(MAX_DOCUMENT_DRAWS):
            ids = tokens(documents[draw.randint(0, len(documents) - 1)])
            if len(ids) > seqlen:
                break
        else:
            raise AtpError(f"no calibration document of more than {seqlen} tokens found in "
                           f"{MAX_DOCUMENT_DRAWS} draws: use shorter windows")
        start = draw.randint(0, len(ids) - seqlen - 1)
        windows.append(torch.as_tensor(ids[start : start + seqlen], dtype=torch.long))
    return torch.stack(windows)


def calibration_set(tokenizer, source: str, count: int, seqlen: int, seed: int) -> torch.Tensor:
    """The calibration windows of ``source``: C4's cut from one document each, as the
    papers' code does; any other text's cut from its token stream."""
    if (source or "").strip() == "c4":
        shard = _c4_shard("calibration")
        return document_windows(shard, count, seqlen, seed,
                                tokens=lambda row: tokenizer(row["text"])["input_ids"])
    return calibration_windows(token_stream(tokenizer, source, "calibration"), count, seqlen, seed)


_MAX_STREAMS = 8
_streams: BoundedCache[tuple, torch.Tensor] = BoundedCache(_MAX_STREAMS)


def token_stream(tokenizer, source: str, part: str) -> torch.Tensor:
    """All tokens of a text part as one 1-D LongTensor; tokenised once per (tokenizer, source)."""
    key = (getattr(tokenizer, "name_or_path", id(tokenizer)), type(tokenizer).__name__, source, part, _mtime(source))
    found = _streams.get(key)
    if found is not None:
        return found
    text = load_text(source, part)
    # Tokenise paragraph chunks: one huge call warns about the model's max length.
    ids: list[int] = []
    chunk = 1 << 16
    for start in range(0, len(text), chunk):
        ids.extend(tokenizer(text[start : start + chunk], add_special_tokens=False)["input_ids"])
    stream = torch.tensor(ids, dtype=torch.long)
    _streams.put(key, stream)
    return stream


def _mtime(source: str) -> float:
    try:
        return Path(source).stat().st_mtime if source not in (BUILTIN, "wikitext2", "c4") else 0.0
    except OSError:
        return 0.0


def check_context(seqlen: int, what: str, context: int | None) -> None:
    """Refuse windows longer than the model's context (``None``: the model states none)."""
    if context is not None and seqlen > context:
        raise AtpError(f"{what} sequence length {seqlen} exceeds the model's context of {context} tokens")


def calibration_windows(stream: torch.Tensor, count: int, seqlen: int, seed: int) -> torch.Tensor:
    """``count`` random windows of ``seqlen`` tokens, reproducible from ``seed``."""
    if stream.numel() < seqlen + 1:
        raise AtpError(
            f"the calibration text has {stream.numel()} tokens, too short for windows of {seqlen} tokens"
        )
    generator = torch.Generator().manual_seed(int(seed))
    starts = torch.randint(0, stream.numel() - seqlen, (count,), generator=generator)
    return torch.stack([stream[s : s + seqlen] for s in starts.tolist()])


def evaluation_windows(stream: torch.Tensor, count: int | None, seqlen: int, part: str = "report") -> torch.Tensor:
    """The first ``count`` non-overlapping windows (all of them when ``count`` is None) of
    the ``part`` (report or selection) text."""
    available = stream.numel() // seqlen
    if available == 0 or (count is not None and count > available):
        raise AtpError(
            f"the {part} text has {stream.numel()} tokens: {available} windows of {seqlen}, "
            f"fewer than the {count} asked for"
        )
    count = available if count is None else count
    return stream[: count * seqlen].view(count, seqlen)
