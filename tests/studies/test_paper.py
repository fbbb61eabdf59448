"""`python -m nst_jax.paper` at the toy scale: every experiment runs, every section, table and figure
is written from the runs, the numbers hold what they claim, a rerun only redraws, and the finished runs kept
with the write-up carry the study to a fresh checkout, each kept run restored only when all of it passes the
checks."""

import csv
import gzip
import json
import os
import shutil
import time
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
    for heading in ("## Convergence", "## 3.4 The Gram matrix", "## 3.5 Other ways", "## 3.6 Hyper-parameters",
                    "## 3.7 Evaluating the result", "## 3.7 Network reduction", "## 4 Results and discussion",
                    "## 5 Conclusion", "## Front figure"):
        assert heading in text
    assert "Not run yet" not in text
    assert f"nst-jax paper --out {toy} --scale toy --only hyper" in text
    for link in [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (toy / link).is_file(), link
    for table in ("hyper/hyper.csv", "hyper/noise_seeds.csv", "statistics/cross.csv", "gram/mmd.csv", "gram/reconstructions.csv",
                  "reduction/reduction.csv", "judges/judges.csv", "convergence/convergence.csv"):
        assert _csv(toy / table), table
    assert (toy / ".gitignore").read_text() == "/runs/\n"
    stopped = [line for line in text.splitlines() if line.startswith("- **Convergence**: ")]
    assert len(stopped) == 2 and all("ended by the stopping rule" in line for line in stopped)   # 3.6 and 4
    share = text.split("**How every study stopped.**")[1].split("Made by")[0]
    hyper = _csv(toy / "hyper" / "hyper.csv")
    row = next(line for line in share.splitlines() if line.startswith("| 3.6 initial images × k |"))
    assert f"| {sum(r['converged'] == 'True' for r in hyper)} of {len(hyper) + 1} |" in row   # + the noise draw
    assert set(json.loads((toy / "timing.json").read_text())) == {"convergence", "hyper", "statistics", "gram", "reduction",
                                                                   "front", "judges"}
    sittings = json.loads((toy / "sittings.json").read_text())
    assert len(sittings) == 1 and sittings[0]["experiments"] == ["convergence", "hyper", "statistics", "gram",
                                                                 "reduction", "front", "judges"]
    assert "In the runs' own steps" in text and "reduction " in text.split("In the runs' own steps")[1].split("\n")[0]
    assert "finished runs outside the network reduction): precision float32 (" in text


def test_the_figures_show_the_results_at_the_runs_size(toy):
    """Every contact sheet's cells are the scale's size (a 150 px label column and an 18 px head)."""
    from PIL import Image
    from nst_jax.studies.paper import scales
    size = scales()["toy"].size
    sheets = [toy / "statistics" / "results.png", toy / "reduction" / "results.png",
              toy / "gram" / "reconstructions.png", *toy.glob("hyper/sheet_*.png")]
    assert len(sheets) == 4
    for sheet in sheets:
        with Image.open(sheet) as im:
            assert (im.width - 150) % (size + 4) == 0 and (im.height - 20) % (size + 4) == 0, (sheet, im.size)


def test_the_grids_ran_in_full_and_the_findings_follow_the_numbers(toy):
    from nst_jax.studies.paper import scales
    scale = scales()["toy"]
    rows = _csv(toy / "hyper" / "hyper.csv")
    # every initial image at init_k, the trade-off's initial images at the other ks
    per_pair = len(scale.inits) + len(scale.tradeoff_inits) * (len(scale.ks) - 1)
    assert len(rows) == len(scale.hyper_pairs) * per_pair
    assert {(r["init"], float(r["k"])) for r in rows} == {(i, scale.init_k) for i in scale.inits} | {
        (i, k) for i in scale.tradeoff_inits for k in scale.ks}
    # the toy's stopping rule (--tol 0.015 over one iteration) ends some runs and not others
    assert all(int(r["iterations"]) == scale.hyper_iterations or r["converged"] == "True" for r in rows)
    assert {r["converged"] for r in rows} == {"True", "False"}
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


def test_the_research_scale_is_five_converging_pairs_over_three_styles_at_256_px():
    from nst_jax.studies.paper import scales
    from nst_jax.transfer.config import SAMPLES
    scale = scales()["research"]
    assert scale.size == 256 and scale.tol > 0 and scale.hyper_iterations >= 1000
    assert len(scale.pairs) >= 5 and len(scale.styles) >= 3 and len({c for c, _ in scale.pairs}) >= 5
    licences = (SAMPLES / "README.md").read_text()
    for content, style in scale.pairs:  # every image ships with the package, its licence stated
        assert Path(content).is_file() and Path(style).is_file()
        assert f"`{Path(content).name}`" in licences and f"`{Path(style).name}`" in licences


def test_where_the_stopping_rule_stops_a_log():
    from nst_jax.studies.paper.convergence import stop_at
    losses = [100.0, 50.0, 40.0, 39.99, 39.985, 39.984]
    # window 1: the first step whose fall is ≤ tol of the loss it reached
    assert stop_at(losses, 1e-3, 1) == 3        # 40 → 39.99: a fall of 2.5e-4 of 39.99
    assert stop_at(losses, 1e-5, 1) is None      # the smallest fall (2.5e-5 of its loss) is above 1e-5
    # window 2: 40 → 39.985 falls 1.9e-4 per iteration (> 1e-4); 39.99 → 39.984 falls 7.5e-5 (≤ 1e-4)
    assert stop_at(losses, 1e-4, 2) == 5


def test_the_judges_score_each_result_against_the_photograph(toy):
    rows = _csv(toy / "judges" / "judges.csv")
    from nst_jax.studies.paper import scales
    scale = scales()["toy"]
    assert {r["judge"] for r in rows} == set(scale.statistics) | {"content"}
    for judge in {r["judge"] for r in rows}:   # one start per pair and judge: the content image's own loss
        assert len({r["start"] for r in rows if r["judge"] == judge}) == 1
    content = [r for r in rows if r["judge"] == "content"]
    assert float(content[0]["start"]) == 0.0   # the photograph is its own content target
    assert {r["source"] for r in rows} == {"hyper", "reduction"}


def test_a_judge_scores_the_photograph_itself_as_its_start():
    """measure_images on the content image: every judge's value is its start exactly, and the
    content loss of the photograph is 0; the style image scores far below its start."""
    from nst_jax.files.image import load_image, resize
    from nst_jax.model import weights as vgg_weights
    from nst_jax.studies.paper import judges, scales
    from nst_jax.studies.paper.common import base
    from nst_jax.transfer.config import with_preset
    from nst_jax.transfer.problem import prepare
    scale = scales()["toy"]
    content, style = scale.pairs[0]
    cfg = with_preset("default", **base(scale, content, style), output="unused.png")
    problem = prepare(cfg, vgg_weights.load())
    style_image = resize(load_image(style), problem.content.shape[:2])
    judged = judges.measure_images(cfg, {"photo": problem.content, "painting": style_image}, scale.statistics,
                                   scale.seed, vgg_weights.load())
    assert set(judged) == set(scale.statistics) | {"content"}
    for judge, values in judged.items():
        assert values["photo"] == values["start"]
    assert judged["content"]["photo"] == 0.0
    assert all(judged[s]["painting"] < 0.5 * judged[s]["start"] for s in scale.statistics)


def test_a_damaged_sittings_record_is_one_error_line(tmp_path, capsys):
    from nst_jax.studies import paper
    out = tmp_path / "p"
    out.mkdir()
    (out / "sittings.json").write_text('[{"cpu": 3}]')
    code, _, err = call_main(paper.main, ["--out", str(out), "--scale", "toy", "--only", "gram"], capsys)
    assert code == 2 and len(err) == 1 and "sittings.json" in err[0] and "delete it" in err[0]


def test_the_running_clock_leaves_out_the_time_the_process_was_stopped():
    from nst_jax.studies.paper.common import RunningClock
    clock = RunningClock(tick=0.5, gap=5.0)
    start = clock.now()
    time.sleep(0.3)
    assert 0.25 <= clock.now() - start < 2.0 and clock.stopped == 0.0    # running time is counted
    with clock._lock:
        clock._last -= 30.0          # as if the process had been stopped for 30 s since the thread last woke
    clock.check()
    assert 29.0 <= clock.stopped <= 30.0
    with clock._lock:                # a 30 s wait of the thread while the process computed is no stop
        clock._last, clock._cpu = clock._last - 30.0, clock._cpu - 40.0
    clock.check()
    assert 29.0 <= clock.stopped <= 30.0


def _log(path: Path, seconds: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"iteration": i, "loss": 1.0, "seconds": s}) + "\n" for i, s in enumerate(seconds)))


def test_the_steps_time_leaves_out_stops_and_counts_a_batch_once(tmp_path):
    from nst_jax.studies.paper.common import steps_seconds
    _log(tmp_path / "a" / "pair" / "r.losses.jsonl", [0.0, 8.0, 8.5, 9.0, 309.0, 309.5, 310.0])  # a 300 s stop
    _log(tmp_path / "b" / "x.losses.jsonl", [0.0, 70.0, 70.5, 71.0, 71.5])   # a first step of 70 s compiles
    _log(tmp_path / "b" / "y.losses.jsonl", [0.0, 70.0, 70.5, 71.0, 71.5])   # its batch's other run: once
    _log(tmp_path / "b" / "z.losses.jsonl", [0.0, 70.0, 70.5])               # one that stopped with it earlier
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.losses.jsonl").write_text("[[[[")  # a damaged log is not counted
    assert steps_seconds([tmp_path / "a", tmp_path / "c", tmp_path / "missing"]) == pytest.approx(10.0)
    assert steps_seconds([tmp_path / "a", tmp_path / "b"]) == pytest.approx(10.0 + 71.5)


# ---------------------------------------------------------------- the finished runs kept (`paper.kept`)
def _fresh(toy: Path, tmp_path: Path) -> Path:
    """A copy of the study as a fresh checkout has it: everything but `runs/`."""
    out = tmp_path / "checkout"
    shutil.copytree(toy, out, ignore=lambda folder, names: ["runs"] if Path(folder) == toy else [])
    return out


def _hyper(out: Path):
    from nst_jax.studies.paper import hyper, scales
    return hyper.experiment(scales()["toy"], out / "runs")


def test_each_finished_run_is_kept_whole(toy):
    from nst_jax.files.runfiles import RunFiles
    from nst_jax.studies.paper import hyper, scales
    runs = [cfg for named in _hyper(toy).runs().values() for _, cfg in named]
    shown, shown_somewhere = hyper.shown_intermediates(scales()["toy"]), False
    assert runs and any(len(RunFiles(cfg.output).intermediates()) > len(shown(cfg)) for cfg in runs)
    for cfg in runs:
        image = Path(cfg.output)
        kept = toy / "kept" / image.relative_to(toy / "runs")
        assert kept.read_bytes() == image.read_bytes()
        assert kept.with_suffix(".json").read_bytes() == image.with_suffix(".json").read_bytes()
        log = image.with_name("result.losses.jsonl")
        assert gzip.decompress(kept.with_name("result.losses.jsonl.gz").read_bytes()) == log.read_bytes()
        shots = sorted(p.name for i, p in RunFiles(image).intermediates().items() if i in shown(cfg))
        assert sorted(p.name for p in kept.parent.glob("result_iter*.png")) == shots
        shown_somewhere = shown_somewhere or bool(shots)
    assert shown_somewhere   # the iteration sheets' images are kept, and no other
    rows = sorted((toy / "runs" / "reduction").rglob("*.row.json"))
    assert rows and all((toy / "kept" / r.relative_to(toy / "runs")).read_bytes() == r.read_bytes() for r in rows)
    assert not list((toy / "kept").rglob("*.ckpt*")) and not list((toy / "kept").rglob("*.lock"))


def test_a_fresh_checkout_goes_on_from_the_kept_runs_without_running_them_again(toy, tmp_path, capsys):
    from nst_jax.studies import paper
    out = _fresh(toy, tmp_path)
    code, _, err = call_main(paper.main, ["--out", str(out), "--scale", "toy", "--only", "hyper,reduction"], capsys)
    text = "".join(err)
    assert code == 0 and "sweep:" not in text and "running" not in text
    assert "finished runs restored" in text
    assert any((out / "runs" / "statistics").rglob("result.png"))   # every experiment's, not only those run
    restored = [p.relative_to(out / "kept") for p in (out / "kept").rglob("*.png")
                if p.relative_to(out / "kept").parts[0] in ("hyper", "hyper-k", "hyper-seeds", "reduction")]
    assert len(restored) >= 8   # five runs of 3.6, one image its sheet shows, two of the reduction
    for image in restored:
        assert (out / "runs" / image).read_bytes() == (toy / "runs" / image).read_bytes()
    for row in (toy / "runs" / "reduction").rglob("*.row.json"):   # restored, not made again
        assert (out / "runs" / row.relative_to(toy / "runs")).read_bytes() == row.read_bytes()
    for table in ("hyper/hyper.csv", "reduction/reduction.csv"):
        assert (out / table).read_text() == (toy / table).read_text().replace(str(toy), str(out))


def _damage_sidecar(kept: Path) -> None:
    record = json.loads(kept.with_suffix(".json").read_text())
    record["settings_hash"] = "0" * 16
    kept.with_suffix(".json").write_text(json.dumps(record))


def _link_image(kept: Path) -> None:
    target = kept.with_name("elsewhere.png")
    kept.rename(target)
    kept.symlink_to(target)


def _bomb_log(kept: Path) -> None:
    kept.with_name("result.losses.jsonl.gz").write_bytes(gzip.compress(b" " * (65 * 2**20)))


def _deep_log(kept: Path) -> None:
    kept.with_name("result.losses.jsonl.gz").write_bytes(gzip.compress(b"[" * 5000 + b"\n"))


def _not_an_image(kept: Path) -> None:
    kept.write_bytes(b"\x89PNG\r\n\x1a\n not really")


def _linked_folder(kept: Path) -> None:
    moved = kept.parent.with_name("moved")
    kept.parent.rename(moved)
    kept.parent.symlink_to(moved)


def _wrong_size(kept: Path) -> None:
    from PIL import Image
    Image.new("RGB", (8, 8)).save(kept)


@pytest.mark.parametrize("damage, fragment", [
    (_damage_sidecar, "made with other settings"), (_link_image, "a symbolic link"),
    (_bomb_log, "expands past 64 MB"), (_deep_log, "nested more than 64 deep"),
    (_not_an_image, "not an image file"), (_wrong_size, "px on its longest side"),
    (_linked_folder, "a symbolic link nst_jax did not make"),
])
def test_a_damaged_kept_run_is_not_restored_and_is_said_once(toy, tmp_path, capsys, damage, fragment):
    from nst_jax.studies.paper import kept
    out = _fresh(toy, tmp_path)
    runs = [cfg for named in _hyper(out).runs().values() for _, cfg in named]
    victim = out / "kept" / Path(runs[0].output).relative_to(out / "runs")
    damage(victim)
    capsys.readouterr()
    assert kept.restore_runs(out, _hyper(out)) == len(runs) - 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "the run is made again" in err[0]
    assert not any(Path(runs[0].output).parent.glob("*"))
    assert all(Path(cfg.output).is_file() for cfg in runs[1:])


@pytest.mark.parametrize("own", ["result.losses.jsonl", "result_iter00007.png"])
def test_nothing_is_restored_over_a_run_this_checkout_has_started_and_it_is_said(toy, tmp_path, capsys, own):
    from nst_jax.studies.paper import kept
    out = _fresh(toy, tmp_path)
    runs = [cfg for named in _hyper(out).runs().values() for _, cfg in named]
    mine = Path(runs[0].output).with_name(own)
    mine.parent.mkdir(parents=True)
    mine.write_text("mine\n")
    capsys.readouterr()
    assert kept.restore_runs(out, _hyper(out)) == len(runs) - 1
    assert mine.read_text() == "mine\n" and not Path(runs[0].output).exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{mine} is of this checkout's own run" in err[0]


def test_a_damaged_kept_reduction_row_is_run_again_and_the_others_restored(toy, tmp_path, capsys):
    from nst_jax.studies.paper import kept
    out = _fresh(toy, tmp_path)
    rows = sorted((out / "kept" / "reduction").rglob("*.row.json"))
    rows[0].write_text("[" * 5000)
    capsys.readouterr()
    assert kept.restore_reduction(out, out / "runs" / "reduction", 32) == len(rows) - 1
    assert "nested more than 64 deep" in capsys.readouterr().err
    assert not (out / "runs" / rows[0].relative_to(out / "kept")).exists()


def test_a_link_on_the_way_into_kept_is_said_and_not_written_through(toy, tmp_path, capsys):
    from nst_jax.studies.paper import kept
    out = tmp_path / "study"
    shutil.copytree(toy, out)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "kept" / "hyper", elsewhere)
    os.symlink(elsewhere, out / "kept" / "hyper")
    for path in elsewhere.rglob("*"):
        if path.is_file():
            path.unlink()   # so that every run is copied again
    capsys.readouterr()
    assert kept.keep_runs(out, _hyper(out)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("run not kept: ") and "a symbolic link nst_jax did not make" in line
                       for line in err)
    assert not [p for p in elsewhere.rglob("*") if p.is_file()]


def test_a_restore_cut_short_is_finished_and_a_rerun_result_replaces_the_kept_one_whole(toy, tmp_path):
    from nst_jax.files.runfiles import RunFiles
    from nst_jax.studies.paper import kept
    out = _fresh(toy, tmp_path)
    runs = [cfg for named in _hyper(out).runs().values() for _, cfg in named]
    here, there = RunFiles(runs[0].output), RunFiles(out / "kept" / Path(runs[0].output).relative_to(out / "runs"))
    here.image.parent.mkdir(parents=True)
    shutil.copy(there.image, here.image)   # as a restore stopped before the sidecar leaves it
    assert kept.restore_runs(out, _hyper(out)) == len(runs)
    assert here.sidecar.read_bytes() == there.sidecar.read_bytes()
    stale = there.intermediate(99999)
    shutil.copy(there.image, stale)
    record = json.loads(here.sidecar.read_text())
    here.sidecar.write_text(json.dumps({**record, "seconds": record["seconds"] + 1}))
    assert kept.keep_runs(out, _hyper(out)) == 1
    assert not stale.exists() and json.loads(there.sidecar.read_text())["seconds"] == record["seconds"] + 1


def test_the_kept_runs_are_not_ignored_by_git_and_the_runs_are(toy, tmp_path):
    import subprocess
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    out = tmp_path / "repo"
    shutil.copytree(toy, out)
    subprocess.run(["git", "init", "-q", str(out)], check=True)
    kept_files = [p for p in (out / "kept").rglob("*") if p.is_file()]
    assert any("reduction" in p.parts for p in kept_files)
    ignored = subprocess.run(["git", "-C", str(out), "check-ignore", "--stdin"], capture_output=True, text=True,
                             input="\n".join(str(p) for p in kept_files + [out / "runs" / "hyper" / "x.png"]))
    assert ignored.stdout.splitlines() == [str(out / "runs" / "hyper" / "x.png")]


def test_the_runs_are_kept_after_each_sweep_not_only_at_the_end(toy):
    experiment, calls = _hyper(toy), []
    experiment.run(1, "local", None, False, lambda: calls.append(len(calls)))
    assert len(experiment.sweeps) > 1 and len(calls) == len(experiment.sweeps)


def test_an_unfinished_run_this_cpu_cannot_continue_loses_its_checkpoint(tmp_path, monkeypatch, capsys):
    """Its checkpoint records forms this machine lacks: the run goes on from its last image (or starts again
    where Ctrl-C left none) instead of failing; a finished run is left alone, and on Ray nothing is
    decided on the driver."""
    from nst_jax.files.runfiles import RunFiles
    from nst_jax.studies.paper import hyper, scales
    from nst_jax.transfer import start
    from nst_jax.transfer.identity import settings_hash
    experiment = hyper.experiment(scales()["toy"], tmp_path / "runs")
    (interrupted, a), (_, b), (killed, c) = [run for named in experiment.runs().values() for run in named][:3]
    for cfg in (a, b, c):
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        RunFiles(cfg.output).checkpoint.write_bytes(b"a checkpoint")
    for cfg, more in ((a, {"interrupted": True}), (b, {})):
        Path(cfg.output).write_bytes(b"an image")
        RunFiles(cfg.output).sidecar.write_text(json.dumps({
            "settings_hash": settings_hash(cfg), "iteration": 4, "loss": 1.0, "seconds": 1.0, "config": {},
            "parts": {"content": 0.5, "style": 0.5, "tv": 0.0}, **more}))
    monkeypatch.setattr(start, "cannot_continue_here",
                        lambda files, h: "it needs AMX" if files.checkpoint.exists() else None)   # as without AMX
    monkeypatch.setattr("nst_jax.studies.sweep.sweep", lambda *args, **kw: None)
    experiment.run(1, "ray", None, False)
    assert all(RunFiles(cfg.output).checkpoint.exists() for cfg in (a, b, c)) and capsys.readouterr().err == ""
    experiment.continue_from_images_where_stuck()
    assert [RunFiles(cfg.output).checkpoint.exists() for cfg in (a, b, c)] == [False, True, False]
    assert capsys.readouterr().err.splitlines() == [
        f"{experiment.name}: {interrupted}: it needs AMX; continuing from its last image",
        f"{experiment.name}: {killed}: it needs AMX; starting it again"]
