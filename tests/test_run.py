"""The end-to-end run: CLI, outputs, compile-once, resume (also after a real SIGKILL), bad input."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from nst_jax.files import image
from nst_jax.run import main
from nst_jax.files.runfiles import RunFiles
from nst_jax.transfer.runs import run

from conftest import CONTENT, ROOT, SMALL_FLAGS, STYLE, call_main, kill_when, one_error_line, run_cli, small_cfg
from nst_jax.transfer.identity import settings_hash


def test_run_writes_everything_and_compiles_once(tmp_path, embedded):
    cfg = small_cfg(tmp_path / "out.png", iterations=8, save_every=4, init="content", size=47)  # a size no other test compiles
    res = run(cfg, progress=False, loaded_weights=embedded)
    assert res.compiles == 1
    assert res.iteration == 8 and res.evaluations == 9
    files = RunFiles(cfg.output)
    img = image.load_image(files.image)
    assert img.shape == (31, 47, 3)  # chelsea is 451×300 → 47 px on the longer side
    again = run(small_cfg(tmp_path / "other" / "out.png", iterations=3, init="noise", size=47), progress=False,
                loaded_weights=embedded)
    assert again.compiles == 0  # same spec and shape: the cached program is reused
    assert files.intermediates() == {4: tmp_path / "out_iter00004.png"}
    log = files.read_log()
    assert [r["iteration"] for r in log] == list(range(9))
    assert log[-1]["loss"] < log[0]["loss"] or log[0]["loss"] == 0
    side = files.read_sidecar()
    assert side["config"]["iterations"] == 8 and side["iteration"] == 8
    assert side["command"].startswith("python ")
    meta = json.loads(Image.open(files.image).text["nst_jax"])
    assert meta["config"]["style_layers"] == ["relu1_1", "relu2_1", "relu3_1"]


@pytest.mark.parametrize("init", ["noise", "white", "black", "mean", "style", "average", "file"])
def test_initial_images(tmp_path, embedded, init):
    if init == "file":
        init = str(STYLE)
    res = run(small_cfg(tmp_path / "out.png", iterations=1, init=init), progress=False, loaded_weights=embedded)
    assert res.image.shape == (32, 48, 3) and np.isfinite(res.loss)


def test_resume_equals_uninterrupted(tmp_path, embedded):
    a = run(small_cfg(tmp_path / "a" / "out.png", iterations=10), progress=False, loaded_weights=embedded)
    run(small_cfg(tmp_path / "b" / "out.png", iterations=4, keep_checkpoint=True), progress=False,
        loaded_weights=embedded)
    b = run(small_cfg(tmp_path / "b" / "out.png", iterations=10, keep_checkpoint=True), progress=False,
            loaded_weights=embedded)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)
    assert b.loss == pytest.approx(a.loss, rel=1e-5)
    assert [r["iteration"] for r in RunFiles(tmp_path / "b" / "out.png").read_log()] == list(range(11))
    # the same command again does nothing more, and says so
    c = run(small_cfg(tmp_path / "b" / "out.png", iterations=10), progress=False, loaded_weights=embedded)
    assert c.iteration == 10 and c.compiles == 0 and c.note == "already at 10 iterations"


def test_finished_run_leaves_no_checkpoint_and_continues_from_its_image(tmp_path, embedded):
    files = RunFiles(tmp_path / "out.png")
    first = run(small_cfg(files.image, iterations=4, checkpoint_every=2), progress=False, loaded_weights=embedded)
    assert not files.checkpoint.exists() and files.image.exists()
    lines = []
    more = run(small_cfg(files.image, iterations=8), progress=False, loaded_weights=embedded, say=lines.append)
    assert more.iteration == 8 and more.loss < first.loss
    assert len(lines) == 1 and "continuing from its image at iteration 4" in lines[0]
    assert [r["iteration"] for r in files.read_log()] == list(range(9))
    assert files.read_sidecar()["iteration"] == 8 and not files.checkpoint.exists()


def test_changed_settings_start_over_and_an_unfinished_run_is_set_aside(tmp_path, embedded):
    files = RunFiles(tmp_path / "out.png")
    first = small_cfg(files.image, iterations=40, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):  # an unfinished run: interrupted at iteration 3
        run(first, progress=False, loaded_weights=embedded, on_step=_interrupt_at(3))
    assert files.checkpoint.exists() and files.read_sidecar()["interrupted"] is True
    assert files.read_sidecar()["iteration"] == 3 and files.image.exists()  # Ctrl-C writes the image so far
    lines = []
    other = run(small_cfg(files.image, iterations=2, style_weight=5.0), progress=False, loaded_weights=embedded,
                say=lines.append)
    assert other.iteration == 2 and "settings changed: starting over" in lines[0]
    assert files.aside(settings_hash(first)).exists() and "3 of 40" in lines[0]
    lines.clear()
    again = run(dataclasses.replace(first, iterations=5), progress=False, loaded_weights=embedded, say=lines.append)
    assert again.iteration == 5 and "set aside earlier" in lines[0]
    assert [r["iteration"] for r in files.read_log()] == list(range(6))
    # a finished result with other settings is simply replaced
    lines.clear()
    run(small_cfg(files.image, iterations=1, tv_weight=1.0), progress=False, loaded_weights=embedded, say=lines.append)
    assert lines == [f"settings changed: starting over ({files.image} will be replaced)"]
    res = run(small_cfg(files.image, iterations=2, style_weight=5.0), progress=False, restart=True,
              loaded_weights=embedded)
    assert res.iteration == 2


def _interrupt_at(iteration):
    def on_step(it, alive, value, parts):
        if it == iteration:
            raise KeyboardInterrupt
    return on_step


def test_progress_header_lines_and_weighted_parts(tmp_path, embedded, capsys):
    """Not a terminal: a header, the first step apart, then plain 'Iteration N / M' lines whose weighted
    parts add up to the total."""
    import re
    run(small_cfg(tmp_path / "p.png", iterations=4, print_every=2, init="noise"), progress=True,
        loaded_weights=embedded)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("nst_jax: chelsea.png → ") and "48×32 px" in err[0] and "ihc.png at 48×48" in err[0]
    assert "device cpu" in err[2] and "memory in use" in err[2] and "no checkpoints" in err[2]
    assert re.match(r"  memory plan: --memory plain, about \S+ \S+ of \S+ \S+ available", err[3])
    assert err[4].startswith("  convolutions: ")
    assert "first step (compiling) took" in err[5]
    steps = [line for line in err if line.startswith("Iteration ")]
    assert [line.split(":")[0] for line in steps] == ["Iteration 2 / 4", "Iteration 4 / 4"]
    for line in steps:
        total, c, st, tv = map(float, re.search(r"loss (\S+) = content (\S+) \+ style (\S+) \+ tv (\S+)",
                                                line).groups())
        assert total == pytest.approx(c + st + tv, rel=1e-3)
    log = RunFiles(tmp_path / "p.png").read_log()[-1]
    assert log["loss"] == pytest.approx(log["content"] + 100.0 * log["style"] + 1e4 * log["tv"], rel=1e-5)


def test_header_says_when_the_content_is_upscaled_and_the_checkpoint_size(tmp_path, embedded, capsys):
    run(small_cfg(tmp_path / "u.png", iterations=1, size=500, content_layers=("relu1_1",), style_layers=("relu1_1",),
                  checkpoint_every=5), progress=True, loaded_weights=embedded)
    err = capsys.readouterr().err.splitlines()
    assert "(upscaled from 451×300)" in err[0]
    import re
    size = float(re.search(r"checkpoint ([0-9.]+) MB every 5 iterations and on Ctrl-C \(removed at the end\)", err[2]).group(1))
    assert size == pytest.approx(2 * 100 * 500 * 333 * 3 * 4 / 1e6, rel=0.02)  # the history dominates


def test_cli_writes_result_and_reports(tmp_path, capsys):
    out = tmp_path / "cli.png"
    code, stdout, err = call_main(main, [CONTENT, STYLE, *SMALL_FLAGS, "--iterations", "2", "--quiet", "-o", out],
                                  capsys)
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} after 2 iterations") and out.exists()
    import re  # the final line has the progress lines' form: weighted parts that add up to the total
    total, c, st, tv = map(float, re.search(r": loss (\S+) = content (\S+) \+ style (\S+) \+ tv (\S+)$",
                                            stdout.strip()).groups())
    assert total == pytest.approx(c + st + tv, rel=1e-3)
    record = json.loads(out.with_suffix(".json").read_text())
    assert total == pytest.approx(record["loss"], rel=1e-3) and st == pytest.approx(100 * record["parts"]["style"], rel=1e-3)


def test_sigkill_then_rerun_gives_same_image(tmp_path):
    """A real kill -9 mid-run; rerunning the same command continues from the last checkpoint."""
    args = ["-m", "nst_jax.run", str(CONTENT), str(STYLE), "--size", "48", "--iterations", "40",
            "--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1", "--checkpoint-every", "5",
            "--quiet"]  # checkpoints are removed at the end: the killed run's last one is what resumes
    ref = run_cli(*args, "-o", "ref.png", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, *args, "-o", "killed.png"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed.ckpt.npz"
    kill_when(proc, ckpt)
    assert ckpt.exists()
    assert not (tmp_path / "killed.png").exists() or proc.returncode == 0
    again = run_cli(*args, "-o", "killed.png", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(image.load_image(tmp_path / "ref.png"), image.load_image(tmp_path / "killed.png"))
    ra = json.loads((tmp_path / "ref.json").read_text())
    rb = json.loads((tmp_path / "killed.json").read_text())
    assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
    iterations = [r["iteration"] for r in RunFiles(tmp_path / "killed.png").read_log()]
    assert iterations == list(range(41))  # no gap and no repeat after the resume


BAD_INPUTS = [
    (["missing.jpg", STYLE], ["missing.jpg", "not found"]),
    (["notes.txt", STYLE], ["notes.txt"]),
    ([CONTENT, STYLE, "--style-layers", "relu9_9"], ["relu9_9", "conv1_1"]),
    ([CONTENT, STYLE, "--size", "8"], ["too small"]),
    ([CONTENT, STYLE, "--weights", "notes.txt"], ["notes.txt", "weights"]),
    ([CONTENT, STYLE, "-o", CONTENT], ["overwrite an input"]),
    ([CONTENT, STYLE, "--style-weight", "-1"], ["--style-weight"]),
    ([CONTENT, STYLE, "--init", "nonsense"], ["nonsense"]),
    ([CONTENT, STYLE, "--style-statistic", "nope"], ["nope", "gram"]),
    ([CONTENT, STYLE, "--optimizer", "sgd"], ["sgd", "lbfgs"]),
    ([CONTENT, STYLE, "--size", "many"], ["--size", "many"]),
    ([CONTENT, STYLE, "--style-blend-weights", "nan"], ["--style-blend-weights", "finite"]),
    ([CONTENT, STYLE, "--scales", "100000"], ["--scales"]),
    ([CONTENT, STYLE, "--style-scale", "1000"], ["--style-scale"]),
    ([CONTENT, STYLE, "--seed", "99999999999999999999999"], ["--seed"]),
    ([CONTENT, STYLE, "-o", "result.txt"], ["image extension"]),
]


@pytest.mark.parametrize("argv,fragments", BAD_INPUTS, ids=[" ".join(map(str, a[2:])) or str(a[0])
                                                            for a, _ in BAD_INPUTS])
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    line = one_error_line(main, [*argv, "--size", "48", "--iterations", "2", "--quiet"] if "--size" not in argv
                          else [*argv, "--iterations", "2", "--quiet"], capsys)
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_nan_stops_and_keeps_last_good_image(tmp_path, capsys):
    out = tmp_path / "nan.png"
    line = one_error_line(main, [CONTENT, STYLE, "--size", "32", "--iterations", "20", "--content-layers", "relu2_1",
                                 "--style-layers", "relu1_1", "--optimizer", "adam", "--lr", "1e38", "--quiet",
                                 "-o", out], capsys)
    assert "became" in line and "last good image" in line
    assert np.isfinite(image.load_image(out)).all()


def test_help_documents_every_option(capsys):
    from nst_jax.transfer.config import FIELDS, flag_of
    code, stdout, _ = call_main(main, ["--help"], capsys)
    assert code == 0
    for name, f in FIELDS.items():
        if not f.metadata["positional"]:
            assert flag_of(name) in stdout, name
    text = " ".join(stdout.split())
    assert "(default: 512)" in text and "(default: the preset's; 100 for 'default')" in text
    assert "(default: None)" not in text  # every option states its real default, once
    assert all(chunk.count("(default:") <= 1 for chunk in text.split(" --"))


def test_tutorial_preset_uses_sequential_names(tmp_path, embedded):
    cfg = small_cfg(tmp_path / "t.png", preset="tutorial", size=32, iterations=2, content_layers=None,
                    style_layers=None)
    assert cfg.content_layers == ("conv2_2",)
    assert cfg.style_layers == ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    assert run(cfg, progress=False, loaded_weights=embedded).iteration == 2


@pytest.mark.parametrize("statistic,optimizer", [("sliced_wasserstein", "adam"), ("mean_std", "lbfgs")])
def test_statistics_run_and_resume(tmp_path, embedded, statistic, optimizer):
    """Random statistics draw their key from (seed, iteration): a resumed run equals an uninterrupted one."""
    kw = dict(style_statistic=statistic, optimizer=optimizer, init="content", keep_checkpoint=True)
    a = run(small_cfg(tmp_path / "a" / "o.png", iterations=6, **kw), progress=False, loaded_weights=embedded)
    run(small_cfg(tmp_path / "b" / "o.png", iterations=3, **kw), progress=False, loaded_weights=embedded)
    b = run(small_cfg(tmp_path / "b" / "o.png", iterations=6, **kw), progress=False, loaded_weights=embedded)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)
    assert np.isfinite(a.loss) and a.parts["style"] >= 0


def test_ctrl_c_during_compilation_exits_cleanly(tmp_path):
    """SIGINT while the first step compiles: the run stops after that step (the interrupt is never raised
    inside XLA or a library callback, where it could be swallowed), writes its image, exits 130."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "nst_jax.run", str(CONTENT), str(STYLE), "--size", "64",
                             "--iterations", "5", "--style-layers", "relu1_1,relu2_1,relu3_1,relu4_1",
                             "--content-layers", "relu4_2", "-o", "c.png"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "c.losses.jsonl").exists():  # the first step starts now
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "Segmentation" not in err and "Exception ignored" not in err
    assert "stopping after the current step" in err and "interrupted: the image so far" in err
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["interrupted"] is True and record["iteration"] < 5
