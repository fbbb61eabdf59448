"""`python -m nst_jax.paper` at the toy scale: every experiment runs, every section, table and figure
is written from the runs, the numbers hold what they claim, and a rerun only redraws."""

import csv
import json
from pathlib import Path

import pytest

from conftest import call_main


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from nst_jax.studies import paper
    out = tmp_path_factory.mktemp("paper")
    assert paper.main(["--out", str(out), "--scale", "toy", "--quiet"]) == 0
    return out


def _csv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_every_section_is_written_with_its_command_and_figures(toy):
    text = (toy / "README.md").read_text()
    for heading in ("## 3.4 The Gram matrix", "## 3.5 Other ways", "## 3.6 Hyper-parameters", "## Network reduction"):
        assert heading in text
    assert "Not run yet" not in text
    assert f"nst-jax paper --out {toy} --scale toy --only hyper" in text
    for link in [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (toy / link).is_file(), link
    for table in ("hyper/hyper.csv", "hyper/noise_seeds.csv", "statistics/cross.csv", "gram/mmd.csv", "gram/reconstructions.csv",
                  "reduction/reduction.csv"):
        assert _csv(toy / table), table
    assert (toy / ".gitignore").read_text() == "runs/\n"
    assert set(json.loads((toy / "timing.json").read_text())) == {"hyper", "statistics", "gram", "reduction"}


def test_the_grids_ran_in_full_and_the_findings_follow_the_numbers(toy):
    from nst_jax.studies.paper import scales
    scale = scales()["toy"]
    rows = _csv(toy / "hyper" / "hyper.csv")
    assert len(rows) == len(scale.hyper_pairs) * len(scale.inits) * len(scale.ks)
    assert all(int(r["iterations"]) == scale.hyper_iterations for r in rows)
    for pair in {r["pair"] for r in rows}:  # 'the best' of each pair and k is one of its runs, 0 % above
        for k in scale.ks:
            above = [float(r["above_best"]) for r in rows if r["pair"] == pair and float(r["k"]) == k]
            assert min(above) == 0.0 and all(a >= 0 for a in above)
    cross = _csv(toy / "statistics" / "cross.csv")
    assert len(cross) == len(scale.pairs) * len(scale.statistics) ** 2
    for r in cross:  # each ratio is the result's loss over the start's
        assert float(r["ratio"]) == pytest.approx(float(r["loss"]) / float(r["start"]))
    assert all(float(r["ratio"]) < 1 for r in cross if r["optimised"] == r["measured"])  # optimising helps


def test_the_gram_loss_is_the_quadratic_mmd(toy):
    rows = _csv(toy / "gram" / "mmd.csv")
    assert {r["layer"] for r in rows} == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert max(abs(float(r["relative_difference"])) for r in rows) < 1e-4


def test_kernel_mean_is_the_definition():
    import numpy as np
    from nst_jax.studies.paper.gram import _kernel_mean
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 3)), rng.standard_normal((5, 3))
    direct = np.mean([[(x @ y) ** 2 for y in b] for x in a])
    assert _kernel_mean(a, b, block=2) == pytest.approx(direct, rel=1e-12)


def test_a_rerun_only_redraws(toy, capsys):
    from nst_jax.studies import paper
    results = sorted(toy.glob("runs/**/result.png")) + [toy / "runs" / "statistics.json"]  # measured once
    stamps = [p.stat().st_mtime_ns for p in results]
    code, out, err = call_main(paper.main, ["--out", str(toy), "--scale", "toy"], capsys)
    assert code == 0 and "sweep:" not in "".join(err) and "network reduction" not in "".join(err)
    assert [p.stat().st_mtime_ns for p in results] == stamps


@pytest.mark.parametrize("argv, message", [
    (["--scale", "huge"], "unknown --scale 'huge'"),
    (["--only", "hyper,colour"], "unknown experiment 'colour'"),
    (["--engine", "slurm"], "unknown --engine 'slurm'"),
    (["--batch", "0"], "--batch must be ≥ 1"),
])
def test_bad_arguments_are_one_error_line(tmp_path, capsys, argv, message):
    from nst_jax.studies import paper
    code, out, err = call_main(paper.main, ["--out", str(tmp_path / "p")] + argv, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_default_folder_is_a_new_one_not_the_projects_results(tmp_path, monkeypatch):
    from nst_jax.studies import paper
    args = paper.build_parser().parse_args([])
    assert Path(args.out) == Path("paper-results") and not Path(args.out).is_absolute()
    assert Path(args.out).resolve() != (Path(paper.__file__).resolve().parents[2] / "docs" / "paper")
