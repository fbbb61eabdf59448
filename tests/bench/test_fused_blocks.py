"""`bench.fused_blocks`: every block size is timed on each shape the fused kernel takes, and a size
that changed an output would stop the bench (no timing asserts)."""

import pytest

from bench import fused_blocks
from nst_jax.model import fused
from nst_jax.model.convforms import Shape


@pytest.fixture(autouse=True)
def _needs_the_kernel():
    if fused.why_unavailable():
        pytest.skip(f"the fused kernel cannot be built here: {fused.why_unavailable()}")


def test_each_candidate_is_timed_and_gives_the_same_bits():
    lib = fused.library()
    # 15 × 23 = 345 tiles: the sizes asked for differ (the bench stops if one changes the output)
    seconds = fused_blocks.measure(Shape(60, 92, 2 * lib.lanes, lib.panel), "f4f", rounds=1)
    assert set(seconds) == set(fused_blocks.CANDIDATES) and all(s > 0 for s in seconds.values())


def test_the_table_names_each_layer_and_the_totals(tmp_path, capsys):
    assert fused_blocks.main(["--size", "64", "--rounds", "1", "--results-dir", str(tmp_path)]) == 0
    [written] = tmp_path.glob("fused-blocks-cpu-*.md")
    text = written.read_text()
    assert "| 64 | conv1_2 | forward |" in text and "rule ÷ tuned" in text
    assert text.count("| 64 | f4f |") == 1
