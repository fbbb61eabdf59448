"""The write-up's findings, computed from small made-up records: what each sentence counts, exactly."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

JUDGES = ["gram", "mean_std"]


def _judged(values: dict) -> list[dict]:
    """Reduction rows of 3.7: {(criterion, fraction, pair): {judge: value}}; fraction 0 is the full network."""
    return [{"source": "reduction", "pair": pair, "criterion": c, "fraction": f, "judge": judge, "value": v}
            for (c, f, pair), by in values.items() for judge, v in by.items()]


def _all(value: float, **one) -> dict:
    return {j: one.get(j, value) for j in JUDGES + ["content"]}


def _reduction_case() -> list[dict]:
    values = {}
    for pair in ("a", "b"):
        values[("activation", 0.0, pair)] = _all(2.0)
        values[("activation", 0.5, pair)] = _all(2.1)                       # 5 % worse: within 10 %
        values[("activation", 0.75, pair)] = _all(2.0, mean_std=2.4) if pair == "b" else _all(2.0)   # 20 % on b
        values[("activation", 0.9, pair)] = _all(2.0)                       # within, but after a failure
        values[("random", 0.5, pair)] = _all(2.0, content=2.3)              # the content loss counts as a judge
    return _judged(values)


def test_the_worst_judge_of_a_reduced_network_is_its_largest_ratio_to_the_full_network():
    from nst_jax.studies.paper import judges
    worst = judges.reduction_worst(_reduction_case(), JUDGES)
    assert worst[("activation", 0.5, "a")] == pytest.approx(1.05)
    assert worst[("activation", 0.75, "b")] == pytest.approx(1.2)
    assert worst[("activation", 0.75, "a")] == pytest.approx(1.0)
    assert worst[("random", 0.5, "b")] == pytest.approx(1.15)
    # the smallest network: every fraction up to the first that fails on some pair
    assert judges.most_removed(_reduction_case(), JUDGES) == {"activation": 0.5, "random": None}


def test_the_conclusion_on_network_reduction_uses_the_judges_and_says_what_the_loss_alone_gives(tmp_path):
    from nst_jax.studies.paper import discussion
    by_loss = [{"criterion": "activation", "fraction": f, "full_loss_vs_full": 1.02, "pair": p}
               for f in (0.5, 0.75, 0.9) for p in ("a", "b")]
    scale = SimpleNamespace(statistics=tuple(JUDGES))
    lines, concluded = discussion._reduction(tmp_path, scale, {"reduction": by_loss, "judges": _reduction_case()})
    assert lines[0].startswith("- **Network reduction** (every judge")
    assert "activation: up to 50% of the channels removed; random: none of the fractions tried" in lines[0]
    assert "loss alone" in lines[1] and "activation: up to 90%" in lines[1]
    assert concluded == ["Ranking channels by activation, 50% of VGG19's channels can go with every judge of the "
                         "result within 10 % of the full network's."]
    lines, concluded = discussion._reduction(tmp_path, scale, {"reduction": by_loss})   # not judged yet
    assert len(lines) == 1 and "90%" in concluded[0] and "loss" in concluded[0]


@pytest.mark.parametrize("worst, holds", [(1.4e-7, True), (3e-3, False), (float("nan"), False)])
def test_the_mmd_identity_is_concluded_only_where_the_difference_is_rounding(tmp_path, worst, holds):
    from nst_jax.studies.paper import discussion
    mmd = [{"pair": "a", "relative_difference": -worst}, {"pair": "b", "relative_difference": worst / 2}]
    lines, concluded = discussion._gram(tmp_path, None, {"mmd": mmd})
    assert ("equals" in lines[0]) == holds and ("more than float32 rounding" in lines[0]) == (not holds)
    assert bool(concluded) == holds


def test_the_strictest_statistic_is_found_pair_by_pair():
    from nst_jax.studies.paper.statistics import _strictest_per_pair
    others = {"a": {"p1": 0.01, "p2": 0.5}, "b": {"p1": 0.5, "p2": 0.01}, "c": {"p1": 0.9, "p2": float("nan")}}
    rows = [{"pair": p, "optimised": x, "measured": y, "ratio": others[x][p] if x != y else 0.001}
            for p in ("p1", "p2") for x in "abc" for y in "abc"]
    assert _strictest_per_pair(rows, ["a", "b", "c"]) == {"p1": "a", "p2": "b"}


def test_a_loss_curve_that_stopped_earlier_is_held_at_its_last_loss():
    from nst_jax.studies.paper.hyper import held_curves
    short = {"pair": "p", "log": [{"iteration": 0, "loss": 8.0}, {"iteration": 1, "loss": 4.0},
                                  {"iteration": 2, "loss": 2.0}]}
    long = {"pair": "q", "log": [{"iteration": i, "loss": 10.0 - i} for i in range(5)]}
    its, ys = held_curves([short, long], {"p": 2.0, "q": 5.0})
    np.testing.assert_array_equal(its, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ys, [[4, 2, 1, 1, 1], [2, 1.8, 1.6, 1.4, 1.2]])


def test_the_trade_off_is_monotonic_where_each_larger_k_lowers_style_and_raises_content():
    from nst_jax.studies.paper.discussion import monotonic_pairs
    rows = [{"pair": "a", "init": "content", "k": k, "content": c, "style": s}
            for k, c, s in ((1, 1.0, 9.0), (10, 2.0, 5.0), (100, 3.0, 1.0))]
    rows += [{"pair": "b", "init": "content", "k": k, "content": c, "style": s}     # style rises from 10 to 100
             for k, c, s in ((100, 3.0, 6.0), (1, 1.0, 9.0), (10, 2.0, 5.0))]
    rows += [{"pair": "c", "init": "content", "k": 100, "content": 1.0, "style": 1.0},   # one k: not counted
             {"pair": "a", "init": "noise", "k": 1, "content": 9.0, "style": 0.0}]
    assert monotonic_pairs(rows, "content", {1.0, 10.0, 100.0}) == (1, 2)
    assert monotonic_pairs(rows, "content", {1.0, 10.0}) == (2, 2)        # only the k asked for


def test_the_noise_draws_and_the_trade_off_are_set_beside_the_128_px_results_at_the_same_k(tmp_path):
    from nst_jax.studies.paper import discussion
    (tmp_path / discussion.LAPTOP).mkdir()
    (tmp_path / discussion.LAPTOP / "noise_seeds.csv").write_text(
        "pair,k,loss_difference\na,100.0,0.2\na,10.0,0.5\n")
    draws = [{"pair": "a", "k": 100.0, "loss_difference": -0.01}, {"pair": "b", "k": 100.0, "loss_difference": 0.03}]
    rows = [{"pair": "a", "init": "content", "k": k, "content": float(k), "style": 1.0 / k} for k in (1, 10, 100)]
    old = [{"pair": "a", "init": "content", "k": k, "content": 1.0, "style": float(k)} for k in (10, 100)]
    lines = discussion._hyper_changes(tmp_path, rows, draws, old)
    assert lines == ["  From the content start, k trades content for style monotonically over k ∈ {10, 100} on 1 of "
                     "1 pairs (at 128 px: 0 of 1).",
                     "  At k = 100, another noise draw ends at a final loss differing by 2 [1 – 3] % (2 pairs); at "
                     "128 px after 300 iterations, 20 % (1 pairs)."]
    assert discussion._hyper_changes(tmp_path, rows, [], []) == [
        "  From the content start, k trades content for style monotonically over k ∈ {1, 10, 100} on 1 of 1 pairs."]


def test_the_arithmetic_line_counts_the_forms_and_precisions_read_back_and_names_no_unknown_one(tmp_path):
    import json
    from nst_jax.studies.paper import report
    sidecars = {"a": ("float32", [["conv1_1", "xla", "xla"], ["conv1_2", "f4fa3", "f4fa3"]]),
                "b": ("<script>", [["conv1_1", "<b>evil</b>", "xla"], ["conv1_2", "f4fa3", "xla"]]),
                "c": ("float32", None)}
    runs = []
    for name, (precision, forms) in sidecars.items():
        (tmp_path / f"{name}.png").write_bytes(b"an image")
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "settings_hash": "0123456789abcdef", "iteration": 4, "loss": 1.0, "seconds": 1.0,
            "parts": {"content": 0.5, "style": 0.5, "tv": 0.0}, "config": {"precision": precision},
            **({"conv_forms": {"forms": forms}} if forms else {})}))
        runs.append((name, SimpleNamespace(output=str(tmp_path / f"{name}.png"))))
    text = report._arithmetic({"study": SimpleNamespace(runs=lambda: {"pair": runs})})
    assert text == ("Arithmetic (from the sidecars of the 3 finished runs outside the network reduction): precision "
                    "float32 (2 runs), other (1 runs); their layers' forward convolutions were computed by the forms "
                    "`f4fa3` 50%, `xla` 25%, `other` 25%. `f4fa3` splits each float32 number into two bfloat16 parts "
                    "and sums three products on AMX; after 300 iterations its loss was within 0.20 % of the pure "
                    "float32 forms' on three pairs (docs/benchmarks.md).")


def test_the_largest_fraction_is_the_last_before_the_first_that_fails():
    from nst_jax.studies.paper.reduction import most_removed
    from nst_jax.studies.paper.tables import largest_passing
    assert largest_passing({0.9, 0.5, 0.75}, lambda f: f != 0.75) == 0.5
    assert largest_passing([0.5], lambda f: False) is None and largest_passing([], lambda f: True) is None
    rows = [{"criterion": c, "fraction": str(f), "full_loss_vs_full": str(v)}      # as read back from a CSV
            for c, f, v in (("activation", 0.0, 1.0), ("activation", 0.5, 1.05), ("activation", 0.75, 1.2),
                            ("activation", 0.9, 1.0), ("random", 0.5, 1.11))]
    assert most_removed(rows) == {"activation": 0.5, "random": None}
    assert most_removed(rows, within=0.25) == {"activation": 0.9, "random": 0.5}


def test_the_largest_mmd_difference_is_nan_wherever_a_nan_stands():
    from nst_jax.studies.paper.gram import largest_difference
    assert largest_difference([{"relative_difference": -3e-7}, {"relative_difference": 1e-7}]) == 3e-7
    for rows in ([float("nan"), 1e-7], [1e-7, float("nan")]):   # max() alone would hide the second
        assert np.isnan(largest_difference([{"relative_difference": v} for v in rows]))
