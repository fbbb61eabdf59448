"""Kill and resume at scale: SIGKILL a run and a sweep at random moments, resume, and check the results.

    python -m bench.soak [--kills 20] [--kills-per-trial 2] [--seed 0]

For each kind (a single run, a batched sweep): one uninterrupted reference; then trials in fresh
folders, each killed `--kills-per-trial` times at random moments (a random delay after the process
starts) and then rerun to the end. Every trial must end with images equal to the reference's (the
decoded PNG arrays, exactly), loss logs with one line per iteration (no gap, no repeat), every JSON,
PNG and checkpoint readable, and no lock or temporary file left. Writes a table to
bench/results/soak-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import write_results

import numpy as np

from nst_jax.machine.hardware import describe_cpu

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "nst_jax" / "samples"
RUN_ARGS = ["-m", "nst_jax.run", str(SAMPLES / "chelsea.png"), str(SAMPLES / "ihc.png"), "--size", "48",
            "--iterations", "150", "--content-layers", "relu3_2", "--style-layers", "relu1_1,relu2_1",
            "--checkpoint-every", "3", "--quiet", "-o", "out.png"]
GRID = {"init": ["noise", "content"], "style_weight": [10.0, 1000.0], "content_layers": [["relu3_2"]],
        "style_layers": [["relu1_1", "relu2_1"]]}
SWEEP_ARGS = ["-m", "nst_jax", "sweep", "30", "--grid", "grid.json", "--size", "32", "--checkpoint-every", "2",
              "--batch", "2", "--quiet", "--no-report", "--out", "out"]


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _prepare(folder: Path, kind: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sweep":
        (folder / "grid.json").write_text(json.dumps(GRID))
        return SWEEP_ARGS
    return RUN_ARGS


def _finish(folder: Path, args: list[str]) -> float:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, *args], cwd=folder, env=_env(), capture_output=True, text=True,
                         timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"run in {folder} failed: {res.stderr[-2000:]}")
    return time.perf_counter() - t


def _kill_at(folder: Path, args: list[str], delay: float) -> bool:
    """Start the command, SIGKILL it after `delay` s; True if it was still running then."""
    proc = subprocess.Popen([sys.executable, *args], cwd=folder, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _results(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*.png"))
            if "_iter" not in p.name and not p.name.startswith(".")}


def _check(folder: Path, reference: Path, target: int) -> list[str]:
    """What is wrong with a finished trial (empty if nothing)."""
    from nst_jax.files import image
    problems = []
    ref, got = _results(reference), _results(folder)
    if ref.keys() != got.keys():
        problems.append(f"result files differ: {sorted(set(ref) ^ set(got))}")
    for name in ref.keys() & got.keys():
        if not np.array_equal(image.load_image(ref[name]), image.load_image(got[name])):
            problems.append(f"{name}: image differs from the uninterrupted run's")
    for log in folder.rglob("*.losses.jsonl"):
        its = [json.loads(line)["iteration"] for line in log.read_text().splitlines()]
        if its != list(range(target + 1)):
            problems.append(f"{log.relative_to(folder)}: iterations {its[:5]}…{its[-3:]} (want 0…{target})")
    for js in folder.rglob("*.json"):
        try:
            json.loads(js.read_text())
        except ValueError:
            problems.append(f"{js.relative_to(folder)}: corrupt JSON")
    for ckpt in folder.rglob("*.ckpt.npz"):
        try:
            with np.load(ckpt) as data:
                [data[k] for k in data.files]
        except Exception as err:  # noqa: BLE001
            problems.append(f"{ckpt.relative_to(folder)}: corrupt checkpoint ({err})")
    left = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    if left:
        problems.append(f"left behind: {[str(p.relative_to(folder)) for p in left]}")
    return problems


def soak(kind: str, kills: int, per_trial: int, base: Path, rng: random.Random) -> dict:
    reference = base / f"{kind}-reference"
    args = _prepare(reference, kind)
    full = _finish(reference, args)
    target = 150 if kind == "run" else 30
    made, trials, equal, bad = 0, 0, 0, []
    while made < kills:
        trials += 1
        folder = base / f"{kind}-trial{trials:02d}"
        _prepare(folder, kind)
        for _ in range(per_trial):
            if made >= kills:
                break
            killed = _kill_at(folder, args, rng.uniform(0.3 * full, full))
            made += killed
            if not killed:  # it finished first: the trial has nothing left to interrupt
                break
        _finish(folder, args)
        problems = _check(folder, reference, target)
        equal += not problems
        bad += [f"trial {trials}: {p}" for p in problems]
        print(f"{kind} trial {trials}: {made} kills so far, {'ok' if not problems else problems}", flush=True)
    return {"kind": kind, "kills": made, "trials": trials, "equal": equal, "problems": bad,
            "reference_seconds": full}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs per kind (a run, a sweep)")
    p.add_argument("--kills-per-trial", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    p.add_argument("--folder", default=None, help="where the trials run (default: a temporary folder)")
    args = p.parse_args(argv)
    import tempfile
    base = Path(args.folder or tempfile.mkdtemp(prefix="nst_soak_"))
    rng = random.Random(args.seed)
    load_before = _load()
    rows = [soak(kind, args.kills, args.kills_per_trial, base, rng) for kind in ("run", "sweep")]
    lines = [f"# Kill and resume — {dt.date.today().isoformat()}", "",
             f"`python -m bench.soak --kills {args.kills} --kills-per-trial {args.kills_per_trial} --seed {args.seed}`: "
             "SIGKILL at a random moment (uniform between 0.3 and 1 × the uninterrupted process's wall time, start-up "
             "included), "
             "then rerun to the end; images compared exactly (decoded PNG arrays).", "",
             f"Machine: {describe_cpu()}; load average before/after {load_before} / {_load()}.", "",
             "| kind | kills | trials | trials equal to the uninterrupted result | problems found |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['kills']} | {r['trials']} | {r['equal']} / {r['trials']} | "
                     f"{len(r['problems'])} |")
    for r in rows:
        lines += [f"- {p}" for p in r["problems"]]
    text = "\n".join(lines) + "\n"
    write_results("soak", text)
    return 0 if all(not r["problems"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
