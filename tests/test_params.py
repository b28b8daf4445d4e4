"""Run inputs declared once (``runs.settings``): the command line's flags, the allocators' fields
and the data a result reports are read from the declarations, not written beside them."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from atp_viz.cli.main import build_parser
from atp_viz.records.results import DataSetup
from atp_viz.runs.allocators import ALLOCATORS
from atp_viz.runs.engine import computation
from atp_viz.runs.params import DATA, EVERY_RUN_COMMAND, flag_name
from atp_viz.runs.settings import DEFAULTS, PARAMS, RunSettings, section_fields, validate

RUN_COMMANDS = ("prune", "generate", "search", "compare", "order", "speed")


def _options(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {name: action for action in sub.choices[command]._actions for name in action.option_strings}


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_every_run_command_takes_each_shared_setting_as_declared(command):
    options = _options(command)
    for name, param in PARAMS.items():
        if param.flag != EVERY_RUN_COMMAND:
            continue
        action = options[flag_name(name)]
        assert action.dest == name and all(options[alias] is action for alias in param.aliases)
        assert action.help.startswith(param.text())
        if name != "sparsity":  # the run's S is decided from the pattern and the quantizer
            assert action.default == getattr(DEFAULTS, name)
        if param.choices is not None:
            assert tuple(action.choices) == tuple(param.choices())


def test_the_sections_cover_the_allocators_and_every_field_has_one():
    assert [f.name for f in fields(RunSettings)] == list(PARAMS)
    assert section_fields("owl") == ("owl_m", "owl_lambda", "owl_mapping")
    assert section_fields("alphapruning") == ("alpha_eps", "alpha_estimator")
    assert all(param.section in ALLOCATORS or param.section in ("run", "method", "data", "compression")
               for param in PARAMS.values())


def test_a_run_reads_its_allocators_section_and_ignores_the_others():
    others = {"owl_m": 7.0, "alpha_eps": 0.4, "evopress_generations": 3}
    atp = computation(validate(RunSettings(allocation="atp", beta=0.01, **others)))
    assert atp == computation(validate(RunSettings(allocation="atp", beta=0.01)))
    owl = computation(validate(RunSettings(allocation="owl", beta=0.01, **others)))
    assert (owl.owl_m, owl.alpha_eps, owl.beta) == (7.0, DEFAULTS.alpha_eps, DEFAULTS.beta)
    # EvoPress reads ATP's β besides its own section (its line to compare with).
    evopress = computation(validate(RunSettings(allocation="evopress", beta=0.01, **others)))
    assert (evopress.beta, evopress.evopress_generations, evopress.owl_m) == (0.01, 3, DEFAULTS.owl_m)


def test_a_result_reports_every_data_field():
    assert set(section_fields(DATA)) <= {f.name for f in fields(DataSetup)}


def test_validate_checks_each_field_as_declared():
    with pytest.raises(Exception, match="OWL M must be positive"):
        validate(replace(DEFAULTS, owl_m=0))
    assert validate(replace(DEFAULTS, calib_samples="4", eval_samples=None)).calib_samples == 4
