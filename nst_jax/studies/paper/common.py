"""What every experiment of the study shares: the image pairs, the scale of the study (`Scale`), the
base settings of its runs, an `Experiment` (its sweeps, run through `nst_jax.studies.sweep`), and the time
per experiment: the sittings' wall time, less the time the process was stopped (`Timer`, `RunningClock`),
and the time in its runs' steps (`steps_seconds`)."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from nst_jax.files import untrusted
from nst_jax.transfer.config import SAMPLES
from nst_jax.base.errors import NSTError
from nst_jax.files.fileio import write_json
from nst_jax.studies.grid import expand

CONTENTS = ("chelsea.png", "hubble_deep_field.jpg", "ihc.png")


STYLES = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")


MORE_CONTENTS = ("astronaut.jpg", "coffee.jpg")  # the research scale's fourth and fifth photographs


STYLE_SETS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


EXPERIMENTS = ("convergence", "hyper", "statistics", "gram", "reduction", "front")

# The research scale's stopping rule and cap, chosen from 2000-iteration runs at 256 px (docs/paper,
# 'Convergence'): stop once the loss falls by less than 3e-5 of itself per iteration over 50 iterations.
RESEARCH_TOL, RESEARCH_WINDOW, RESEARCH_CAP = 3e-5, 50, 2000


def sample(name: str) -> str:
    return str(SAMPLES / name)


def pair_name(content: str, style: str) -> str:
    return f"{Path(content).stem}+{Path(style).stem}"


def diagonal() -> tuple[tuple[str, str], ...]:
    """Each content with a different style: every image in one pair."""
    return tuple((sample(c), sample(s)) for c, s in zip(CONTENTS, STYLES))


def five_pairs() -> tuple[tuple[str, str], ...]:
    """Five photographs, each with one of the three styles in turn: every style in at least one pair."""
    contents = CONTENTS + MORE_CONTENTS
    return tuple((sample(c), sample(STYLES[i % len(STYLES)])) for i, c in enumerate(contents))


def all_pairs() -> tuple[tuple[str, str], ...]:
    return tuple((sample(c), sample(s)) for c in CONTENTS for s in STYLES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scale:
    """How big the study is: image size, pairs, grids and iterations of each experiment."""

    name: str
    size: int
    pairs: tuple[tuple[str, str], ...]        # the statistics' cross-evaluation and the MMD check
    hyper_pairs: tuple[tuple[str, str], ...]  # initial images × k, and network reduction
    inits: tuple[str, ...]
    ks: tuple[float, ...]
    hyper_iterations: int
    statistics: tuple[str, ...]
    statistics_iterations: int
    reconstruction_sets: tuple[str, ...]
    reconstruction_iterations: int
    criteria: tuple[str, ...]
    fractions: tuple[float, ...]
    reduction_iterations: int
    batch: int
    noise_seeds: tuple[int, ...] = ()         # more draws of the noise initial image (3.6), besides `seed`
    seed: int = 0
    tol: float = 0.0                          # the stopping rule of every run (0: run every iteration)
    tol_window: int = 20
    # 3.6's grid: every initial image at `init_k` and only `tradeoff_inits` at the other ks; None: inits × ks
    init_k: float | None = None
    tradeoff_inits: tuple[str, ...] = ()
    front: tuple[str, str] | None = None      # the pair of the front-page figure, at `front_size`
    front_size: int = 512

    @property
    def styles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for _, s in self.pairs))


def scales() -> dict[str, Scale]:
    from nst_jax.objective import statistics
    from nst_jax.transfer.config import INITS
    from nst_jax.studies.pruning import CRITERIA
    return {
        "toy": Scale(name="toy", size=32, pairs=diagonal()[:1], hyper_pairs=diagonal()[:1], inits=("content", "noise"),
                     ks=(10.0, 100.0, 1000.0), init_k=100.0, tradeoff_inits=("content",), hyper_iterations=4, statistics=("gram", "mean_std"), statistics_iterations=3,
                     reconstruction_sets=("relu1_1", "relu2_1"), reconstruction_iterations=3,
                     criteria=("activation",), fractions=(0.0, 0.5), reduction_iterations=3, batch=2,
                     noise_seeds=(1,), tol=0.015, tol_window=1, front=diagonal()[0], front_size=48),
        # about an hour on two CPU cores (0.1 s per iteration at 128 px; batching does not pay on a CPU)
        "laptop": Scale(name="laptop", size=128, pairs=diagonal(), hyper_pairs=diagonal(), inits=INITS,
                        ks=(10.0, 100.0, 1000.0), hyper_iterations=300, statistics=tuple(statistics.NAMES),
                        statistics_iterations=150, reconstruction_sets=STYLE_SETS, reconstruction_iterations=150,
                        criteria=CRITERIA, fractions=(0.0, 0.5, 0.75, 0.9), reduction_iterations=150, batch=1,
                        noise_seeds=(1,)),
        "cluster": Scale(name="cluster", size=512, pairs=all_pairs(), hyper_pairs=all_pairs(), inits=INITS,
                         ks=(10.0, 100.0, 1000.0), hyper_iterations=5000, statistics=tuple(statistics.NAMES),
                         statistics_iterations=1000, reconstruction_sets=STYLE_SETS, reconstruction_iterations=1000,
                         criteria=CRITERIA, fractions=(0.0, 0.25, 0.5, 0.75, 0.9), reduction_iterations=1000,
                         batch=7, noise_seeds=(1, 2)),
        # about 8 hours on two CPU cores: 256 px, every run to convergence by the stopping rule (capped),
        # five pairs; 3.6's grid shrunk to every initial image at k = 100 and two of them over four ks (at
        # k = 10000 both ran to the cap: 50 minutes for the five pairs, left out)
        "research": Scale(name="research", size=256, pairs=five_pairs(), hyper_pairs=five_pairs(), inits=INITS,
                          ks=(1.0, 10.0, 100.0, 1000.0), init_k=100.0, tradeoff_inits=("content", "noise"),
                          hyper_iterations=RESEARCH_CAP, statistics=tuple(statistics.NAMES),
                          statistics_iterations=RESEARCH_CAP, reconstruction_sets=STYLE_SETS,
                          reconstruction_iterations=RESEARCH_CAP, criteria=CRITERIA, fractions=(0.0, 0.5, 0.75, 0.9),
                          reduction_iterations=RESEARCH_CAP, batch=1, noise_seeds=(1,), tol=RESEARCH_TOL,
                          tol_window=RESEARCH_WINDOW, front=five_pairs()[0]),
    }


def base(scale: Scale, content: str, style: str, **fields) -> dict:
    return {"content": content, "styles": (style,), "size": scale.size, "seed": scale.seed, "tol": scale.tol,
            "tol_window": scale.tol_window, "checkpoint_every": 100, "keep_checkpoint": False, "print_every": 0,
            **fields}


class Experiment:
    """One experiment's sweeps: (folder, grid, base, iterations) per sweep; `runs()` reads them back."""

    def __init__(self, name: str, sweeps: list[tuple[str, Path, dict, dict, int]]):
        self.name, self.sweeps = name, sweeps

    def run(self, batch: int, engine: str, address: str | None, progress: bool,
            after_sweep: Callable[[], None] = lambda: None) -> None:
        """Every sweep in turn (each resuming), calling `after_sweep` when one has finished."""
        from nst_jax.studies.sweep import sweep
        if engine == "local":   # on Ray, the workers' CPUs are the ones that matter
            self.continue_from_images_where_stuck()
        for label, folder, grid, base, iterations in self.sweeps:
            if progress:
                print(f"{self.name}: {label}", file=sys.stderr, flush=True)
            sweep(iterations, grid, folder, base, batch=batch, show_progress=progress, engine=engine,
                  address=address, report=False)
            after_sweep()

    def continue_from_images_where_stuck(self) -> None:
        """An unfinished run whose checkpoint cannot continue on this CPU (fused forms it lacks, as when a
        sitting goes on on another machine) loses its checkpoint, with one line, instead of failing: it
        goes on from its last image (with this machine's forms and a fresh solver state) where Ctrl-C left
        one, else starts again. A checkpoint that cannot be read is left for the run to report."""
        from nst_jax.files.runfiles import RunFiles
        from nst_jax.transfer.identity import settings_hash
        from nst_jax.transfer.start import cannot_continue_here
        for named in self.runs().values():
            for name, cfg in named:
                files, h = RunFiles(cfg.output), settings_hash(cfg)
                try:
                    why = None if finished(cfg) else cannot_continue_here(files, h)
                    side = files.read_sidecar() if why and files.image.exists() else None
                except NSTError:
                    continue
                if why:
                    files.remove_checkpoint()
                    then = ("continuing from its last image" if side and side.get("settings_hash") == h
                            else "starting it again")
                    print(f"{self.name}: {name}: {why}; {then}", file=sys.stderr, flush=True)

    def runs(self) -> dict[str, list[tuple[str, object]]]:
        """Per sweep label, the (run name, Config) of every run."""
        return {label: expand(grid, {**base, "iterations": iterations}, folder)
                for label, folder, grid, base, iterations in self.sweeps}


def finished(cfg) -> dict | None:
    """The sidecar of a run that finished (by its cap or its stopping rule), else None: a run stopped
    by Ctrl-C also writes its image and sidecar, marked interrupted, and is continued next sitting."""
    from nst_jax.files.runfiles import RunFiles
    if not Path(cfg.output).exists():
        return None
    side = RunFiles(cfg.output).read_sidecar()
    return None if side is None or side.get("interrupted") else side


def complete(experiment: Experiment) -> bool:
    """Whether every run of the experiment has finished."""
    return all(finished(cfg) is not None for named in experiment.runs().values() for _, cfg in named)


def results_signature(experiment: Experiment) -> tuple:
    """What the experiment's results are now (paths and modification times): changes when a sitting works."""
    out = []
    for named in experiment.runs().values():
        for _, cfg in named:
            path = Path(cfg.output)
            if path.exists():
                out.append((str(path), path.stat().st_mtime_ns))
    return tuple(out)


def newer_than_results(path: Path, experiment: Experiment) -> bool:
    """True if `path` was written after every result of the experiment (its measurements are current)."""
    outputs = [Path(cfg.output) for named in experiment.runs().values() for _, cfg in named]
    return path.exists() and all(o.exists() for o in outputs) and \
        path.stat().st_mtime_ns >= max(o.stat().st_mtime_ns for o in outputs)


class RunningClock:
    """Seconds this process has been running: wall time less the time it was stopped (SIGSTOP, Ctrl-Z, a
    suspended machine). A thread that wakes every `tick` seconds sees a stop as a gap of more than `gap`
    seconds between its wakes in which the process used almost no CPU time (a thread merely kept waiting
    while others compute is not a stop)."""

    def __init__(self, tick: float = 0.5, gap: float = 5.0):
        self.tick, self.gap, self.stopped = tick, gap, 0.0
        self._last, self._cpu, self._lock = time.monotonic(), time.process_time(), threading.Lock()
        threading.Thread(target=self._watch, name="running-clock", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(self.tick)
            self.check()

    def check(self) -> None:
        """Count the gap since the last wake as stopped time when it is longer than `gap` and the process
        used under a tenth of it in CPU time."""
        with self._lock:
            now, cpu = time.monotonic(), time.process_time()
            gap = now - self._last
            if gap > self.gap and cpu - self._cpu < 0.1 * gap:
                self.stopped += gap - self.tick
            self._last, self._cpu = max(self._last, now), cpu

    def now(self) -> float:
        self.check()
        with self._lock:
            return time.monotonic() - self.stopped


STOPPED_STEP = 60.0   # a step logged as longer than this and 50× its run's median step: time stopped


def steps_seconds(folders: list[Path]) -> float:
    """Seconds in the steps of the runs under `folders`, from their loss logs (each record's `seconds`):
    what the runs themselves took, without the sittings' start-up and measurements. A step after a log's
    first (which compiles) longer than a minute and 50× its run's median step is taken for time the
    process was stopped, and left out. The runs of one batch log the same seconds: counted once."""
    from nst_jax.files.runfiles import read_log
    series = []
    for folder in folders:
        for log in sorted(Path(folder).rglob("*.losses.jsonl")) if Path(folder).is_dir() else ():
            try:
                series.append([float(r["seconds"]) for r in read_log(log) if "seconds" in r])
            except NSTError:   # a damaged log: its run is not counted
                continue
    total, counted = 0.0, []
    for seconds in sorted(series, key=len, reverse=True):
        if any(longer[:len(seconds)] == seconds for longer in counted):   # a batch's run that stopped with it or before
            continue
        counted.append(seconds)
        steps = [b - a for a, b in zip(seconds, seconds[1:]) if b >= a]
        if steps:
            limit = max(STOPPED_STEP, 50 * statistics.median(steps))
            total += steps[0] + sum(s for s in steps[1:] if s <= limit)
    return total


class Timer:
    """Seconds per experiment (by a `RunningClock`: stopped time left out), added up over the invocations
    that did its work (resumes)."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds = {}
        if path.exists():
            try:
                self.seconds = untrusted.read_json(path, "timing file")
            except NSTError as err:
                raise NSTError(f"{err}; delete it (only the recorded times are lost)") from None
            if not (isinstance(self.seconds, dict) and all(isinstance(k, str) and isinstance(v, (int, float))
                                                           and not isinstance(v, bool) for k, v in self.seconds.items())):
                raise NSTError(f"{path}: expected an object of experiment names and seconds; delete it (only the "
                               f"recorded times are lost)")

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 1)
        write_json(self.path, self.seconds)


class Sittings:
    """The invocations that worked on the study: when, on which CPU, and which experiments each did
    work for, so a write-up finished across machines says which CPU made what."""

    def __init__(self, path: Path, cpu: str):
        self.path, self.entries = path, []
        if path.exists():
            try:
                self.entries = untrusted.read_json(path, "sittings file")
            except NSTError as err:
                raise NSTError(f"{err}; delete it (only the record of earlier sittings is lost)") from None
            if not (isinstance(self.entries, list) and all(
                    isinstance(e, dict) and isinstance(e.get("cpu"), str) and isinstance(e.get("started"), str)
                    and isinstance(e.get("experiments"), list) and all(isinstance(x, str) for x in e["experiments"])
                    for e in self.entries)):
                raise NSTError(f"{path}: expected a list of sittings (cpu, started, experiments); delete it (only "
                               "the record of earlier sittings is lost)")
        import time
        self.entries.append({"cpu": cpu, "started": time.strftime("%Y-%m-%d %H:%M"), "experiments": []})

    def worked_on(self, name: str) -> None:
        if name not in self.entries[-1]["experiments"]:
            self.entries[-1]["experiments"].append(name)
        write_json(self.path, self.entries)

    def cpus(self) -> list[str]:
        return list(dict.fromkeys(e["cpu"] for e in self.entries if e["experiments"]))
