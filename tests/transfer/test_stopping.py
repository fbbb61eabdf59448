"""The stopping rule (--tol, --tol-window): exact values, where a run stops, reruns, resume, batches and
sweeps."""

import dataclasses
import json
import math

import numpy as np
import pytest

from nst_jax.files import image
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.stopping import StopRule
from nst_jax.transfer.runs import run, run_many

from conftest import call_main, small_cfg

WINDOW = 4


def predicted_stop(losses, rule):
    for t in range(1, len(losses)):
        if rule.met(losses[max(0, t - rule.window):t + 1]):
            return t
    return None


def test_rule_exact_values():
    r = StopRule(1e-3, 2)
    assert not r.met([10.0, 9.999])                     # shorter than the window
    assert r.met([10.0, 9.995, 9.99])                   # fell 0.01 ≤ 1e-3 · 2 · 9.99
    assert r.met([12.0, 10.0, 9.995, 9.99])             # only the last window counts
    assert not r.met([10.0, 9.9, 9.8])                  # fell 0.2 > 0.0196
    assert not r.met([10.0, 10.0, 10.0])                # did not fall (rejected steps)
    assert not r.met([10.0, 10.01, 10.02])              # rose
    assert not r.met([math.nan, 9.0, 8.999])
    assert not StopRule(0.0, 2).met([10.0, 9.99999, 9.99998])
    done = {"converged": {"tol": 1e-3, "window": 2}}
    assert StopRule(1e-3, 2).covers(done) and StopRule(2e-3, 2).covers(done)
    assert not StopRule(1e-4, 2).covers(done)            # a stricter rule continues
    assert not StopRule(1e-3, 3).covers(done) and not StopRule(0.0, 2).covers(done)
    for record in (None, {}, {"converged": "yes"}, {"converged": {"tol": "x", "window": 2}},
                   {"converged": {"tol": True, "window": 2}}, {"converged": {"tol": -1, "window": 2}}):
        assert not StopRule(1e-3, 2).covers(record)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, embedded):
    """A 30-iteration run without the rule, and a tol that its losses meet near iteration 15."""
    out = tmp_path_factory.mktemp("ref") / "ref.png"
    run(small_cfg(out, iterations=30), progress=False, loaded_weights=embedded)
    losses = [r["loss"] for r in RunFiles(out).read_log()]
    t = next(t for t in range(15, 30) if losses[t - WINDOW] > losses[t])
    tol = (losses[t - WINDOW] - losses[t]) / (WINDOW * losses[t]) * 1.0001
    stop = predicted_stop(losses, StopRule(tol, WINDOW))
    assert stop is not None and stop < 30
    return losses, tol, stop


def test_run_stops_where_the_rule_says_and_a_rerun_does_nothing(tmp_path, embedded, reference):
    losses, tol, stop = reference
    cfg = small_cfg(tmp_path / "a.png", iterations=30, tol=tol, tol_window=WINDOW)
    res = run(cfg, progress=False, loaded_weights=embedded)
    files = RunFiles(cfg.output)
    assert res.converged and res.iteration == stop
    assert [r["loss"] for r in files.read_log()] == losses[:stop + 1]   # the same path, cut where the rule says
    record = files.read_sidecar()
    assert record["iteration"] == stop and record["converged"] == {"tol": tol, "window": WINDOW}
    assert not files.checkpoint.exists()
    stamp = files.image.stat().st_mtime_ns
    again = run(dataclasses.replace(cfg, iterations=200), progress=False, loaded_weights=embedded)
    assert again.note.startswith(f"stopped at {stop} iterations by the stopping rule") and again.converged
    assert files.image.stat().st_mtime_ns == stamp
    more = run(dataclasses.replace(cfg, iterations=stop + 3, tol=tol / 100), progress=False, loaded_weights=embedded)
    assert more.iteration == stop + 3 and not more.converged             # a stricter rule continues


def test_resumed_run_stops_at_the_same_iteration_with_the_same_image(tmp_path, embedded, reference):
    losses, tol, stop = reference
    whole = small_cfg(tmp_path / "whole.png", iterations=30, tol=tol, tol_window=WINDOW)
    run(whole, progress=False, loaded_weights=embedded)
    part = small_cfg(tmp_path / "part.png", iterations=stop - 2, tol=tol, tol_window=WINDOW, keep_checkpoint=True)
    run(part, progress=False, loaded_weights=embedded)
    assert RunFiles(part.output).checkpoint.exists()
    res = run(dataclasses.replace(part, iterations=30, keep_checkpoint=False), progress=False, loaded_weights=embedded)
    assert res.converged and res.iteration == stop
    assert [r["loss"] for r in RunFiles(part.output).read_log()] == losses[:stop + 1]
    np.testing.assert_array_equal(image.load_image(part.output), image.load_image(whole.output))


def test_batched_members_stop_on_their_own(tmp_path, embedded, reference):
    losses, tol, stop = reference
    cfgs = [small_cfg(tmp_path / f"b{k}.png", iterations=30, style_weight=k, tol=tol, tol_window=WINDOW)
            for k in (100.0, 1000.0)]
    batched = run_many(cfgs, loaded_weights=embedded)
    alone = [run(dataclasses.replace(c, output=str(tmp_path / f"alone{i}.png")), progress=False,
                 loaded_weights=embedded) for i, c in enumerate(cfgs)]
    assert batched[0].converged and batched[0].iteration == stop   # the k = 100 run is the reference's
    for b, a, c in zip(batched, alone, cfgs):
        assert (b.iteration, b.converged) == (a.iteration, a.converged)
        assert RunFiles(c.output).read_sidecar()["iteration"] == b.iteration
        assert len(RunFiles(c.output).read_log()) == b.iteration + 1
        np.testing.assert_allclose(image.load_image(c.output), image.load_image(a.paths["image"]), atol=1e-4)


def test_sweep_runs_that_stopped_are_finished(tmp_path):
    from nst_jax.studies.sweep import sweep
    from conftest import CONTENT, STYLE
    base = {"content": str(CONTENT), "styles": (str(STYLE),), "size": 32, "checkpoint_every": 0, "print_every": 0,
            "tol": 1.0, "tol_window": 2}   # stops at the first fall over two iterations
    grid = {"init": ["content"], "style_weight": [10.0, 100.0], "content_layers": [["relu3_2"]],
            "style_layers": [["relu1_1", "relu2_1"]]}
    out = tmp_path / "s"
    runs = sweep(20, grid, out, base, show_progress=False)
    records = [RunFiles(c.output).read_sidecar() for _, c in runs]
    assert all(r["converged"] == {"tol": 1.0, "window": 2} and r["iteration"] < 20 for r in records)
    stamps = [RunFiles(c.output).image.stat().st_mtime_ns for _, c in runs]
    sweep(40, grid, out, base, show_progress=False)
    assert [RunFiles(c.output).image.stat().st_mtime_ns for _, c in runs] == stamps


def test_cli_final_line_says_it_stopped(tmp_path, capsys):
    from nst_jax.run import main
    from conftest import CONTENT, SMALL_FLAGS, STYLE
    out = tmp_path / "c.png"
    code, stdout, err = call_main(main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "40", "--tol", "1",
                                         "--tol-window", "2", "--quiet", "-o", out], capsys)
    assert code == 0, err
    record = json.loads(out.with_suffix(".json").read_text())
    assert stdout.startswith(f"wrote {out} after {record['iteration']} iterations") and record["iteration"] < 40
    assert "(stopped early: the loss fell by less than 1 of itself per iteration over the last 2)" in stdout
    code, stdout, err = call_main(main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "80", "--tol", "1",
                                         "--tol-window", "2", "--quiet", "-o", out], capsys)
    assert code == 0 and "nothing to do — a smaller --tol continues" in stdout


@pytest.mark.parametrize("argv, fragment", [(["--tol", "-1"], "--tol must be ≥ 0"),
                                            (["--tol-window", "0"], "--tol-window must be ≥ 1"),
                                            (["--tol", "nan"], "--tol must be finite")])
def test_bad_rule_values(tmp_path, capsys, argv, fragment):
    from nst_jax.run import main
    from conftest import CONTENT, STYLE, one_error_line
    assert fragment in one_error_line(main, [CONTENT, STYLE, *argv, "-o", tmp_path / "x.png"], capsys)
