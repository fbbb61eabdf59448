"""The convolution planner on its own: shapes of a run, candidates, choosing by (fake) timings and the
error budget, the per-machine cache (another machine's or an unreadable one is not used), a plan's
forms in the run's parameters and records, and a continued run keeping the forms it started with (also
after a real kill -9, with this machine's cache changed in between)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import CONTENT, ROOT, STYLE, call_main, kill_when, run_cli, small_cfg
from nst_jax.machine import identity
from nst_jax.model import convforms, layers
from nst_jax.files import image
from nst_jax.model.convforms import Choice, Shape

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_2")


def test_a_runs_shapes_are_vggs_convolutions_at_its_size():
    shapes = convforms.run_shapes(LAYERS, 64, 96)
    assert list(shapes) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                            "conv3_4", "conv4_1", "conv4_2"]
    assert shapes["conv1_1"] == (Shape(64, 96, 3, 64), None)                 # the RGB layer's gradient: its own
    assert shapes["conv2_1"] == (Shape(32, 48, 64, 128), Shape(32, 48, 128, 64))
    assert shapes["conv4_2"][0] == Shape(8, 12, 512, 512)
    assert convforms.candidates(Shape(32, 48, 64, 128)) == ("xla", "f2", "f4")
    assert convforms.candidates(Shape(33, 48, 64, 128)) == ("xla", "f4")    # F(2×2) needs even sizes
    assert convforms.candidates(Shape(8, 12, 512, 512)) == ("xla",)         # too small to time


def test_the_fastest_form_within_the_error_budget_wins():
    assert convforms.choose({"xla": 3.0, "f2": 2.0, "f4": 1.0}, {"xla": 0, "f2": 1e-6, "f4": 1e-6}) == "f4"
    assert convforms.choose({"xla": 3.0, "f2": 2.0, "f4": 1.0}, {"xla": 0, "f2": 1e-6, "f4": 1e-3}) == "f2"
    assert convforms.choose({"xla": 1.0, "f4": 0.97}, {"xla": 0, "f4": 0}) == "xla"  # within the margin: XLA's


def test_bfloat16_products_are_a_candidate_only_when_asked_and_within_their_own_budget():
    assert convforms.candidates(Shape(32, 48, 64, 128), bf16=True) == ("xla", "f2", "f4", "f2b")
    assert convforms.candidates(Shape(33, 48, 64, 128), bf16=True) == ("xla", "f4")
    seconds = {"xla": 3.0, "f2": 2.0, "f4": 1.5, "f2b": 1.0}
    assert convforms.choose(seconds, {"xla": 0, "f2": 1e-6, "f4": 1e-6, "f2b": 4e-3}) == "f2b"
    assert convforms.choose(seconds, {"xla": 0, "f2": 1e-6, "f4": 1e-6, "f2b": 3e-2}) == "f4"  # over 1e-2


@pytest.fixture(autouse=True)
def measuring(monkeypatch):
    """These tests measure (the rest of the suite runs with NST_JAX_TUNE=off), among the forms written in XLA's
    operations: the fused kernel's planning is tested in test_fused."""
    monkeypatch.delenv("NST_JAX_TUNE", raising=False)
    monkeypatch.setenv("NST_JAX_FUSED", "off")


def test_tuning_off_leaves_every_convolution_to_xla(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_JAX_TUNE", "off")
    forms = convforms.choose_forms(LAYERS, 64, 96, path=tmp_path / "f.json", measure_fn=lambda *a: pytest.fail("measured"))
    assert forms.source == "off" and {f for _, a, b in forms.by_layer for f in (a, b)} == {"xla"}
    assert not (tmp_path / "f.json").exists()


def _fake(timings):
    """A measure function from fixed timings per form, recording the shapes it was asked for."""
    asked = []

    def measure(shape, forms):
        asked.append(shape)
        seconds = {f: timings[f] for f in forms}
        return Choice(convforms.choose(seconds, {f: 0.0 for f in forms}), seconds, {f: 0.0 for f in forms})
    return measure, asked


def test_the_planner_chooses_as_the_timings_say_and_caches_per_machine(tmp_path):
    path = tmp_path / "forms.json"
    measure, asked = _fake({"xla": 2.0, "f2": 3.0, "f4": 1.0})
    forms = convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=measure)
    assert forms.source == "measured" and asked
    tuned = {s.key for pair in convforms.run_shapes(LAYERS, 64, 96).values() for s in pair if s and s.tuned}
    assert {s.key for s in asked} == tuned
    by = forms.as_dict()
    assert by["conv1_1"] == ("xla", "xla") and by["conv2_1"] == ("f4", "f4") and by["conv4_2"] == ("xla", "xla")
    again, asked_again = _fake({"xla": 0.1, "f2": 3.0, "f4": 1.0})
    assert convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=again) == forms._replace(source="cache",
                                                                                      seconds=forms_seconds(again))
    assert asked_again == []                                  # all from the cache: nothing measured again
    data = json.loads(path.read_text())
    assert list(data["machines"]) == [identity.machine_key(identity.machine())]


def forms_seconds(_):
    return pytest.approx(0.0, abs=0.5)


def test_auto_bf16_measures_what_the_cache_lacks_and_plain_auto_reads_the_same_entries(tmp_path, monkeypatch):
    path = tmp_path / "forms.json"
    monkeypatch.setattr(convforms, "bf16_units", lambda: True)         # as on a CPU with AMX or AVX512-BF16
    measure, _ = _fake({"xla": 2.0, "f2": 3.0, "f4": 1.5, "f2b": 1.0})
    exact = convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=measure)
    assert exact.as_dict()["conv2_1"] == ("f4", "f4")
    measure, asked = _fake({"xla": 2.0, "f2": 3.0, "f4": 1.5, "f2b": 1.0})
    fast = convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=measure, bf16=True)
    assert asked and fast.source == "measured" and fast.as_dict()["conv2_1"] == ("f2b", "f2b")
    assert convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=lambda *a: pytest.fail("measured")).by_layer \
        == exact.by_layer                                   # the f2b timings are cached, not chosen without bf16
    assert "F(2×2) bf16 × " in convforms.describe(fast)
    assert convforms.uniform(LAYERS, 64, 96, "f2b").as_dict()["conv2_1"] == ("f2b", "f2b")
    monkeypatch.setattr(convforms, "bf16_units", lambda: False)        # a CPU without: the float32 forms, said
    said = []
    assert convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=lambda *a: pytest.fail("measured"), bf16=True,
                          say=said.append).by_layer == exact.by_layer
    assert said == ["convolution forms: this CPU has no bfloat16 units; choosing among the float32 forms"]


def test_a_cache_from_another_machine_or_unreadable_is_not_used(tmp_path):
    path = tmp_path / "forms.json"
    other = {"version": convforms.CACHE_VERSION, "machines": {"0123456789abcdef": {
        "machine": {"cpu": "elsewhere"}, "shapes": {
            s.key: {"form": "f2", "seconds": {"xla": 1, "f2": 0.1}} for pair in
            convforms.run_shapes(LAYERS, 64, 96).values() for s in pair if s}}}}
    path.write_text(json.dumps(other))
    said = []
    measure, asked = _fake({"xla": 1.0, "f2": 2.0, "f4": 3.0})
    forms = convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=measure, say=said.append)
    assert asked and "another machine" in said[0] and set(f for _, a, b in forms.by_layer for f in (a, b)) == {"xla"}
    assert "0123456789abcdef" in json.loads(path.read_text())["machines"]   # theirs kept beside ours
    for broken in ["{", json.dumps({"version": convforms.CACHE_VERSION, "machines": []}), json.dumps({"version": 99}),
                   json.dumps({"version": convforms.CACHE_VERSION, "machines": {identity.machine_key(identity.machine()): {
                       "machine": identity.machine(), "shapes": {"1x1x1>1": {"form": "magic", "seconds": {}}}}}})]:
        path.write_text(broken)
        said.clear()
        measure, asked = _fake({"xla": 1.0, "f2": 2.0, "f4": 3.0})
        convforms.choose_forms(LAYERS, 64, 96, path=path, measure_fn=measure, say=said.append)
        assert asked and said[0].startswith("convolution forms: not using"), broken


def test_the_measured_forms_are_real_and_within_the_budget():
    choice = convforms.measure(Shape(32, 32, 64, 64), ("xla", "f2", "f4", "f2b"), rounds=1)
    assert set(choice.seconds) == {"xla", "f2", "f4", "f2b"} and all(v > 0 for v in choice.seconds.values())
    assert choice.error["xla"] == 0 and all(choice.error[f] < convforms.ERROR_BUDGET for f in ("f2", "f4"))
    assert convforms.ERROR_BUDGET < choice.error["f2b"] < convforms.BF16_BUDGET     # bfloat16's rounding


def test_a_run_records_its_forms_and_a_continued_run_keeps_them(tmp_path, monkeypatch):
    from nst_jax.transfer.runs import run
    measure, _ = _fake({"xla": 2.0, "f2": 3.0, "f4": 1.0})
    monkeypatch.setattr(convforms, "measure", measure)
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "cache"))
    cfg = small_cfg(tmp_path / "o.png", iterations=6, checkpoint_every=3, keep_checkpoint=True)
    whole = run(small_cfg(tmp_path / "whole.png", iterations=6), progress=False)
    record = json.loads((tmp_path / "whole.json").read_text())["conv_forms"]
    assert record["source"] in ("measured", "cache") and any(r[1] == "f4" for r in record["forms"])
    run(small_cfg(tmp_path / "o.png", iterations=3, keep_checkpoint=True), progress=False)
    slow, _ = _fake({"xla": 1.0, "f2": 3.0, "f4": 2.0})   # the machine's cache now says XLA's everywhere
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(convforms, "measure", slow)
    continued = run(cfg, progress=False)
    sidecar = json.loads((tmp_path / "o.json").read_text())["conv_forms"]
    assert sidecar == {"forms": record["forms"], "source": "recorded", "native_gram": False}
    np.testing.assert_array_equal(continued.image, whole.image)             # bit for bit
    assert whole.compiles == 1 and continued.compiles <= 1                  # the step compiled once


def test_tune_prepares_and_shows_the_cache(tmp_path, capsys, monkeypatch):
    from nst_jax.apps import tune
    measure, _ = _fake({"xla": 2.0, "f2": 3.0, "f4": 1.0})
    monkeypatch.setattr(convforms, "measure", measure)
    monkeypatch.setenv("NST_JAX_CACHE", str(tmp_path / "cache"))
    code, out, err = call_main(tune.main, ["--size", "64", "--content", str(CONTENT)], capsys)
    assert code == 0 and "F(4×4)" in out and "| shape" in out
    code, out, _ = call_main(tune.main, ["--show"], capsys)
    assert code == 0 and "this machine" in out
    code, out, _ = call_main(tune.main, ["--forget"], capsys)
    assert code == 0 and "removed" in out
    code, _, err = call_main(tune.main, ["--size", "x"], capsys)
    assert code == 2 and err[0].startswith("error:") and len(err) == 1


def _cache_choosing(folder, form: str, layers, height: int, width: int) -> None:
    """A cache of this machine in which `form` is the fastest for every tuned shape of such a run."""
    seconds = {"xla": 2.0, "f2": 3.0, "f4": 3.0, form: 1.0}
    choices = {s.key: Choice(form, {f: seconds[f] for f in convforms.candidates(s)}, {f: 0.0 for f in seconds})
               for pair in convforms.run_shapes(layers, height, width).values() for s in pair if s and s.tuned}
    info = identity.machine()
    convforms.write_cache(folder / convforms.CACHE_FILE, identity.machine_key(info), info, choices)


def test_a_run_killed_and_continued_keeps_its_recorded_forms_bit_for_bit(tmp_path, monkeypatch):
    """kill -9 mid-run with Winograd F(4×4) from this machine's cache; the cache then says XLA's everywhere;
    rerunning the same command continues with the recorded forms and ends on the uninterrupted run's image."""
    from nst_jax.files.runfiles import RunFiles
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu3_2")
    height, width = image.fit_size(image.image_size(CONTENT), 48)
    f4, xla = tmp_path / "f4-cache", tmp_path / "xla-cache"
    _cache_choosing(f4, "f4", layers, height, width)
    _cache_choosing(xla, "xla", layers, height, width)
    args = ["-m", "nst_jax.run", str(CONTENT), str(STYLE), "--size", "48", "--iterations", "60",
            "--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1,relu3_1", "--checkpoint-every", "3",
            "--quiet"]
    monkeypatch.setenv("NST_JAX_CACHE", str(f4))            # (the module's fixture has turned measuring on)
    ref = run_cli(*args, "-o", "ref.png", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen([sys.executable, *args, "-o", "killed.png"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    ckpt = tmp_path / "killed.ckpt.npz"
    assert kill_when(proc, ckpt) == -signal.SIGKILL and ckpt.exists()
    monkeypatch.setenv("NST_JAX_CACHE", str(xla))           # this machine's cache now says XLA's everywhere
    again = run_cli(*args, "-o", "killed.png", cwd=tmp_path)
    other = run_cli(*args, "-o", "other.png", cwd=tmp_path)   # a new run takes the new cache's forms
    assert again.returncode == 0 and other.returncode == 0, again.stderr + other.stderr
    sidecar = lambda name: json.loads((tmp_path / f"{name}.json").read_text())
    recorded = sidecar("ref")["conv_forms"]
    assert recorded["source"] == "cache" and ["conv1_2", "f4", "f4"] in recorded["forms"]   # a tuned layer of the 48 px run
    assert sidecar("killed")["conv_forms"] == {"forms": recorded["forms"], "source": "recorded", "native_gram": False}
    assert all(fwd == bwd == "xla" for _, fwd, bwd in sidecar("other")["conv_forms"]["forms"])
    iterations = [r["iteration"] for r in RunFiles(tmp_path / "killed.png").read_log()]
    assert iterations == list(range(61))                       # resumed: no gap and no repeat
    assert sidecar("killed")["loss"] == sidecar("ref")["loss"]  # bit for bit …
    np.testing.assert_array_equal(image.load_image(tmp_path / "killed.png"), image.load_image(tmp_path / "ref.png"))
    assert sidecar("other")["loss"] != sidecar("ref")["loss"]   # … where XLA's forms would not have been


def test_conv5_1_of_a_256px_run_is_timed_and_the_rgb_layer_is_not():
    """conv5_1 at 256 px (16×16, or 16×10 at 3:2) has 512 channels: XLA's convolution costs ~8 ms there."""
    for height, width in ((256, 256), (170, 256)):
        shapes = convforms.run_shapes(("relu1_1", "relu5_1"), height, width)
        assert all(s is not None and s.tuned for s in shapes["conv5_1"]), (height, width)
        assert not any(s is not None and s.tuned for s in shapes["conv1_1"])
    assert not any(s is not None and s.tuned for s in convforms.run_shapes(LAYERS, 64, 96)["conv4_2"])   # 8×12


def test_the_fused_forms_are_timed_after_the_kernel_has_tried_its_block_sizes(monkeypatch):
    """`measure` calls each form `warm_calls` times before timing it: the fused kernel's forms also the
    calls in which the kernel tries block sizes (reported by the library), the others two; and a form's
    time is the least of its timed calls."""
    import jax
    from nst_jax.model import fused
    monkeypatch.setattr(fused, "library", lambda: fused.Library(None, 16, 16, 0, 7))
    assert convforms.warm_calls("f4fa") == convforms.warm_calls("f4f") == convforms.WARM_CALLS + 7
    assert convforms.warm_calls("f2") == convforms.WARM_CALLS == 2
    calls = []

    def counted(x, u, precision=None):   # counts executions of the compiled form, not its tracing
        jax.debug.callback(lambda: calls.append(1))
        return layers.xla_conv(x, u)
    monkeypatch.setitem(layers.FORMS, "f2", layers.FORMS["f2"]._replace(transform=None, conv=counted))
    choice = convforms.measure(Shape(8, 8, 64, 64), ("xla", "f2"), rounds=3)
    assert len(calls) == convforms.WARM_CALLS + 3 and choice.error["f2"] == 0.0
    with pytest.raises(ValueError, match="rounds"):
        convforms.measure(Shape(8, 8, 64, 64), ("xla",), rounds=0)
