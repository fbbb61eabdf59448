"""The tools beside `run`: grids (types, names), a batch whose member fails, the report's plot, the
gallery, the weights CLI's one-line errors — in-process."""

import json

import numpy as np
import pytest

from nst_jax.studies import gallery, report, sweep
from nst_jax.base.errors import NSTError
from nst_jax.studies.grid import expand, label, load_grid, points, run_name, token
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.runs import run_many

from conftest import CONTENT, STYLE, call_main, one_error_line, small_cfg
from nst_jax.transfer.identity import settings_hash


@pytest.mark.parametrize("text,fragment", [
    ('{"style_weight": ["heavy"]}', "style_weight must be a number"),
    ('{"init": [3]}', "init must be a string"),
    ('{"seed": [1.5]}', "seed must be an integer"),
    ('[1, 2]', "must be an object"),
    ('{"style_weight": 10}', "non-empty list"),
    ('{"bogus": [1]}', "unknown field 'bogus'"),
    ('{"style_weight": [1', "unreadable"),
])
def test_grid_files_are_checked_field_by_field(tmp_path, text, fragment):
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(NSTError, match=fragment) as err:
        load_grid(str(path))
    assert str(path) in str(err.value)


def test_grid_names_and_labels(tmp_path):
    grid = {"init": ["noise", "content"], "content_layers": [["relu3_2", "relu4_2"]], "style_weight": [10.0, 1e3]}
    assert [n for n, _ in points(grid)] == ["init-noise_k-10", "init-noise_k-1000", "init-content_k-10",
                                            "init-content_k-1000"]
    assert token(("a/b/x.png", "y.jpg")) == "x+y.jpg" and label(("a/b/x.png", 2.0)) == "x.png,2"
    assert run_name({"style_weight": 100.0, "init": "noise"}) == "k-100_init-noise"
    runs = expand(grid, {"content": str(CONTENT), "styles": (str(STYLE),), "iterations": 1}, tmp_path)
    assert runs[0][1].content_layers == ("relu3_2", "relu4_2") and runs[0][1].output.endswith("result.png")
    with pytest.raises(NSTError, match="grid point init-bogus: --init 'bogus'"):
        expand({"init": ["noise", "bogus"]}, {"content": str(CONTENT), "styles": (str(STYLE),)}, tmp_path)


def test_a_failing_member_of_a_batch_keeps_its_last_good_image(tmp_path, embedded):
    """The same loop runs batches: one member's NaN is reported for it alone, the others finish."""
    kw = dict(iterations=4, optimizer="adam", lr=1e38, size=32, content_layers=("relu2_1",), style_layers=("relu1_1",))
    bad = small_cfg(tmp_path / "bad" / "result.png", style_weight=1.0, **kw)
    good = small_cfg(tmp_path / "good" / "result.png", style_weight=0.0, content_weight=0.0, tv_weight=0.0, **kw)
    results = run_many([bad, good], loaded_weights=embedded)
    assert "became" in results[0].error and results[1].error is None
    assert np.isfinite(np.asarray(__import__("nst_jax.files.image", fromlist=["x"]).load_image(bad.output))).all()
    assert RunFiles(good.output).finished(4) and not RunFiles(bad.output).sidecar.exists()


def test_report_plot_and_bad_input(tmp_path, capsys):
    log = tmp_path / "a.losses.jsonl"
    log.write_text("".join(json.dumps({"iteration": i, "loss": 10.0 / (i + 1), "content": 1.0 / (i + 1),
                                       "style": 2.0, "tv": 0.1, "seconds": i}) + "\n" for i in range(5)))
    code, out, _ = call_main(report.main, ["plot", log, "-o", tmp_path / "p.png"], capsys)
    assert code == 0 and (tmp_path / "p.png").stat().st_size > 1000
    assert "no sweep.json" in one_error_line(report.main, [tmp_path], capsys)
    (tmp_path / "sweep.json").write_text("{not json")
    assert "unreadable" in one_error_line(report.main, [tmp_path], capsys)


def test_sweep_cli_rejects_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "--out" in one_error_line(sweep.main, ["1", "--out", tmp_path / "file"], capsys)
    assert "--batch" in one_error_line(sweep.main, ["1", "--batch", "0", "--out", tmp_path / "o"], capsys)
    assert "invalid int" in one_error_line(sweep.main, ["many"], capsys)


def test_statistics_gallery(tmp_path, embedded, monkeypatch, capsys):
    import nst_jax.model.weights
    from conftest import SMALL
    monkeypatch.setattr(nst_jax.model.weights, "load", lambda path=None: embedded)
    layers = {k: SMALL[k] for k in ("content_layers", "style_layers")}
    results = gallery.statistics_gallery(str(CONTENT), str(STYLE), tmp_path, 48, 2, ["gram", "mean_std"], **layers)
    assert set(results) == {"gram", "mean_std"} and all(np.isfinite(r["loss"]) for r in results.values())
    assert json.loads((tmp_path / "statistics.json").read_text()) == results
    assert (tmp_path / "statistics.png").stat().st_size > 10_000
    with pytest.raises(NSTError, match="unknown --style-statistic 'nope'"):
        gallery.statistics_gallery(str(CONTENT), str(STYLE), tmp_path, 32, 1, ["gram", "nope"])
    capsys.readouterr()
    assert "nope" in one_error_line(gallery.main, ["statistics", "--statistics", "nope", "-o", tmp_path], capsys)


def test_config_fields_generate_the_parser_and_the_hash():
    """Each run option is one Config field: the parser, config_from_args and the settings hash come from it."""
    import dataclasses
    from nst_jax.transfer.config import FIELDS, Config, with_preset
    from nst_jax.transfer.options import config_from_args
    from nst_jax.run import build_parser

    args = build_parser().parse_args([str(CONTENT), str(STYLE), "--style-weight", "5", "--scales", "64,128",
                                      "--style-layers", "relu_1,relu2_1", "--save-every", "3"])
    cfg = config_from_args(args)
    assert cfg == with_preset("default", content=str(CONTENT), styles=(str(STYLE),), style_weight=5.0,
                              scales=(64, 128), style_layers=("relu1_1", "relu2_1"), save_every=3)
    untouched = [n for n in FIELDS if not hasattr(args, n)]
    assert "size" in untouched and "output" in untouched  # absent options fall back to preset/defaults
    for f in dataclasses.fields(Config):
        other = "remat-bf16" if f.name == "memory" else "other" if isinstance(getattr(cfg, f.name), str) else 7
        changed = dataclasses.replace(cfg, **{f.name: other})
        assert (settings_hash(changed) != settings_hash(cfg)) == f.metadata["result"], f.name
    # rematerialising changes no number: only the history's precision enters the hash
    assert settings_hash(dataclasses.replace(cfg, memory="remat")) == settings_hash(dataclasses.replace(cfg, memory="plain"))


def test_loop_overhead_bench_runs(tmp_path):
    from bench.loop_overhead import measure
    row = measure(size=32, iterations=2, rounds=1, out_dir=str(tmp_path))
    assert row["bare_step_s"] > 0 and row["run_loop_step_s"] > 0 and set(row["parts_s"]) == {
        "host read of value and parts", "host copy of x (last good image)", "log line (json + write)"}


def test_benches_write_their_tables_through_one_helper(tmp_path, capsys):
    import datetime as dt
    from bench import write_results
    path = write_results("thing-cpu", "| a |\n", tmp_path)
    assert path == tmp_path / f"thing-cpu-{dt.date.today().isoformat()}.md" and path.read_text() == "| a |\n"
    assert "| a |" in capsys.readouterr().out
