"""The shipped atlas still says what this code computes: two of its points run again on the
embedded model must land within the band another CPU moves perplexity (docs/noise.md)."""

import pytest

from atp_viz.runs.atlas import ATLAS_DIR, CROSS_CPU_BAND, point_name, read
from atp_viz.runs.engine import run_pruning

pytestmark = pytest.mark.embedded

REBUILD = ("rebuild the atlas: move assets/atlas away, run `python -m atp_viz atlas --out assets/atlas` "
           "(resumable; docs/atlas.md says how long it takes) and commit the new files")
# The cheapest points of the two methods that compute statistics: S = 0.5, uniform.
POINTS = ("wanda_s0.50_uniform.json.gz", "sparsegpt_s0.50_uniform.json.gz")


@pytest.mark.parametrize("name", POINTS)
def test_a_recomputed_point_agrees_with_the_atlas(name):
    shipped = read(ATLAS_DIR)
    stored = {point_name(settings): (settings, result) for settings, result in shipped.points.items()}
    assert name in stored, f"the atlas has no point {name}: {REBUILD}"
    settings, kept = stored[name]
    here = run_pruning(settings).result
    for what, then, now in (("report", kept.ppl, here.ppl), ("selection", kept.selection_ppl, here.selection_ppl)):
        moved = abs(now - then) / then
        assert moved <= CROSS_CPU_BAND, (
            f"{name}: {what} perplexity {now:.2f} here, {then:.2f} in the atlas ({shipped.header['cpu']}, "
            f"{shipped.header['date']}): {moved:.1%} apart, more than the {CROSS_CPU_BAND:.1%} another CPU moves it; "
            + REBUILD)
