"""What a run tells its user: durations in words, the weighted parts that add up to the total, and the
Reporter's lines (the compiling first step apart, then every --print-every iterations with the rate and
the ETA of the steps alone)."""

import io

import pytest

from nst_jax.transfer import progress
from nst_jax.transfer.progress import Reporter, human_seconds, loss_text, weighted_parts


@pytest.mark.parametrize("seconds, text", [
    (0, "0.0 s"), (-3, "0.0 s"), (0.04, "0.0 s"), (12.345, "12.3 s"), (59.94, "59.9 s"),
    (60, "1 min 00 s"), (61.4, "1 min 01 s"), (119.6, "2 min 00 s"), (3599, "59 min 59 s"),
    (3600, "1 h 00 min"), (3661, "1 h 01 min"), (90061, "25 h 01 min"),
])
def test_human_seconds(seconds, text):
    assert human_seconds(seconds) == text


def test_weighted_parts_multiply_each_part_by_its_weight():
    parts = {"content": 2.0, "style": 0.5, "tv": 1e-3}
    assert weighted_parts(parts, (1.0, 100.0, 1e4)) == {"content": 2.0, "style": 50.0, "tv": 10.0}
    # the temporal part only where the run has one, and its weight is the fourth
    assert weighted_parts({**parts, "temporal": 0.25}, (1.0, 100.0, 1e4, 8.0))["temporal"] == 2.0
    assert "temporal" not in weighted_parts(parts, (1.0, 100.0, 1e4, 8.0))
    assert "temporal" not in weighted_parts({**parts, "temporal": 0.25}, (1.0, 100.0, 1e4))


def test_loss_text_shows_the_parts_as_they_add_up():
    parts = {"content": 2.0, "style": 0.5, "tv": 1e-3}
    assert loss_text(62.0, parts, (1.0, 100.0, 1e4)) == "loss 62 = content 2 + style 50 + tv 10"
    assert loss_text(1234567.0, parts, (0.5, 1.0, 0.0)) == "loss 1.235e+06 = content 1 + style 0.5 + tv 0"
    with_temporal = loss_text(64.0, {**parts, "temporal": 2.0}, (1.0, 100.0, 1e4, 1.0))
    assert with_temporal == "loss 64 = content 2 + style 50 + tv 10 + temporal 2"


PARTS = {"content": 1.0, "style": 0.01, "tv": 0.0}
WEIGHTS = (1.0, 100.0, 0.0)


class Clock:
    """perf_counter, advanced by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", c)
    return c


def test_reporter_lines_in_a_log_file(clock):
    """No terminal: the first step with its compile time, then a line every print_every iterations and at
    the target, each with the seconds per step (the first step left out) and the ETA."""
    out = io.StringIO()
    rep = Reporter("run", 0, 10, 4, WEIGHTS, stream=out)
    assert rep.tty is False          # a StringIO is not a terminal
    clock.now += 7.5
    rep.on_step(1, 1, 2.0, PARTS)     # compiles
    for it in range(2, 11):
        clock.now += 0.5
        rep.on_step(it, 1, 2.0, PARTS)
    rep.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "run: first step (compiling) took 7.5 s; loss 2 = content 1 + style 1 + tv 0",
        "Iteration 4 / 10: loss 2 = content 1 + style 1 + tv 0 (0.5 s/it, ETA 3.0 s)",
        "Iteration 8 / 10: loss 2 = content 1 + style 1 + tv 0 (0.5 s/it, ETA 1.0 s)",
        "Iteration 10 / 10: loss 2 = content 1 + style 1 + tv 0 (0.5 s/it, ETA 0.0 s)",
    ]


def test_reporter_from_a_resumed_iteration_counts_only_its_own_steps(clock):
    out = io.StringIO()
    rep = Reporter("again", 50, 60, 5, WEIGHTS, stream=out)
    clock.now += 3.0
    rep.on_step(51, 1, 2.0, PARTS)
    for it in range(52, 56):
        clock.now += 2.0
        rep.on_step(it, 1, 2.0, PARTS)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("again: first step (compiling) took 3.0 s")
    assert lines[1] == "Iteration 55 / 60: loss 2 = content 1 + style 1 + tv 0 (2 s/it, ETA 10.0 s)"


def test_reporter_with_print_every_zero_says_only_the_first_step(clock):
    out = io.StringIO()
    rep = Reporter("quiet", 0, 5, 0, WEIGHTS, stream=out)
    for it in range(1, 6):
        clock.now += 1.0
        rep.on_step(it, 1, 2.0, PARTS)
    assert len(out.getvalue().splitlines()) == 1


def test_reporter_on_a_terminal_draws_a_bar_instead_of_lines(clock):
    out = io.StringIO()
    rep = Reporter("bar", 0, 4, 2, WEIGHTS, stream=out, tty=True)
    clock.now += 1.0
    rep.on_step(1, 1, 2.0, PARTS)
    assert rep.bar is not None and rep.bar.total == 4 and rep.bar.n == 1
    for it in range(2, 5):
        rep.on_step(it, 1, 2.0, PARTS)
    assert rep.bar.n == 4
    rep.close()
    assert rep.bar is None
    text = out.getvalue()
    assert "Iteration" not in text and text.startswith("bar: first step (compiling) took 1.0 s")
    rep.close()   # a second close is harmless


def test_reporter_say_writes_one_line():
    out = io.StringIO()
    Reporter("x", 0, 1, 1, WEIGHTS, stream=out).say("hello")
    assert out.getvalue() == "hello\n"


def test_memory_in_use_is_a_positive_byte_count():
    assert progress.memory_in_use() > 1 << 20
