"""A per-block schedule written by hand or by another tool, read from text.

Accepted: a JSON list of rates, an atp_viz result (its ``schedule``), or one rate per
line (blank lines and ``#`` comments ignored). The rates themselves are checked by
``settings.given_rates``: this module only reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..base.errors import AtpError

# A schedule file holds a few hundred numbers: anything far larger is not one.
MAX_RATES_BYTES = 1 << 20


def parse_rates(text: str) -> list[object]:
    """The rates written in ``text``, as found (numbers or the strings that should be)."""
    stripped = text.strip()
    if not stripped:
        raise AtpError("the rates are empty: give one rate per decoder block")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise AtpError(f"the rates are not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("schedule")
        if not isinstance(data, list):
            raise AtpError("JSON rates must be a list of numbers (or a result with a 'schedule' list)")
        return data
    lines = [line.split("#", 1)[0].strip() for line in stripped.splitlines()]
    return [line.rstrip(",") for line in lines if line]


def read_rates_file(path: str) -> list[object]:
    """The rates in the file at ``path`` (see ``parse_rates``)."""
    file = Path(path).expanduser()
    try:
        if file.stat().st_size > MAX_RATES_BYTES:
            raise AtpError(f"{path!r} is not a rates file: over {MAX_RATES_BYTES // 1024} KiB")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AtpError(f"rates file {path!r} does not exist") from None
    except IsADirectoryError:
        raise AtpError(f"rates file {path!r} is a folder") from None
    except UnicodeDecodeError:
        raise AtpError(f"rates file {path!r} is not UTF-8 text") from None
    except OSError as exc:
        raise AtpError(f"cannot read rates file {path!r}: {exc.strerror}") from None
    return parse_rates(text)
