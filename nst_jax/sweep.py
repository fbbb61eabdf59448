"""`python -m nst_jax.sweep ITERATIONS`: a resumable hyper-parameter sweep, as in the seed paper's
experiments (`python 0.py 5000`), done properly.

A grid (TOML or JSON: each key a Config field, each value a list) expands to runs, each in its own
folder `out/<name>/` (name from the grid values) holding `result.png`, its `.json`, `.losses.jsonl`,
`.ckpt.npz` and intermediate images at 1, 2, 5, 10, 20, 50, … iterations. ITERATIONS is the target:
a rerun with a larger target continues every run from its checkpoint, the same target does nothing
for finished runs, an interrupted sweep resumes where it stopped, and deleting a run's files restarts
that run only. `--batch N` optimises up to N runs that share image size and layers at once (vmap in
one compiled step); their files are the same as those of one-by-one runs. At the end the HTML report
is written (`python -m nst_jax.report out/`).

The default grid is the seed's: the seven initial images × k ∈ {10, 100, 1000} on the sample images.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from nst_jax.config import INITS, Config, with_preset
from nst_jax.errors import NSTError, cli

SAMPLES = Path(__file__).resolve().parent / "samples"
DEFAULT_GRID = {"init": list(INITS), "style_weight": [10.0, 100.0, 1000.0]}
SHORT = {"style_weight": "k", "content_weight": "cw", "tv_weight": "tv", "style_statistic": "stat",
         "content_layers": "cl", "style_layers": "sl", "optimizer": "opt"}
# fields that may differ inside one batched (vmapped) program
BATCHABLE = {"init", "seed", "style_weight", "content_weight", "tv_weight"}
RESULT = "result.png"


def load_grid(path: str | None) -> dict[str, list]:
    """The grid from a .toml or .json file (or the default); NSTError for unknown fields."""
    if path is None:
        return dict(DEFAULT_GRID)
    p = Path(path)
    try:
        if p.suffix == ".toml":
            import tomllib
            grid = tomllib.loads(p.read_text())
        else:
            grid = json.loads(p.read_text())
    except FileNotFoundError:
        raise NSTError(f"grid {p}: not found") from None
    except (ValueError, OSError) as err:
        raise NSTError(f"grid {p}: unreadable ({err})") from None
    fields = {f.name for f in dataclasses.fields(Config)} - {"content", "styles", "output"}
    for key, values in grid.items():
        if key not in fields:
            raise NSTError(f"grid {p}: unknown field {key!r}; valid fields: {', '.join(sorted(fields))}")
        if not isinstance(values, list) or not values:
            raise NSTError(f"grid {p}: {key} must be a non-empty list")
    return grid


def _token(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_token(v) for v in value)
    return Path(str(value)).stem if "/" in str(value) else str(value)


def run_name(point: dict[str, Any], grid: dict[str, list] | None = None) -> str:
    """A readable folder name for a grid point from the axes that vary, e.g. `init-noise_k-100`."""
    varying = [k for k in point if grid is None or len(grid[k]) > 1]
    name = "_".join(f"{SHORT.get(k, k)}-{_token(point[k])}" for k in varying)
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "-" for ch in name) or "run"


def expand(grid: dict[str, list], base: dict[str, Any], out: Path) -> list[tuple[str, Config]]:
    """One validated Config per grid point, with its output in out/<name>/result.png."""
    runs = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        point = {k: tuple(v) if isinstance(v, list) else v for k, v in point.items()}
        name = run_name(point, grid)
        fields = {**base, **point, "output": str(out / name / RESULT)}
        preset = fields.pop("preset", "default")
        runs.append((name, with_preset(preset, **fields)))
    names = [n for n, _ in runs]
    if len(set(names)) != len(names):
        raise NSTError("two grid points map to the same run name; make the grid values distinct")
    return runs


def _batch_key(cfg: Config) -> tuple:
    d = dataclasses.asdict(cfg)
    return tuple((k, str(v)) for k, v in sorted(d.items()) if k not in BATCHABLE | {"output"})


def run_batch(cfgs: list[Config], progress=None) -> None:
    """Optimise runs that differ only in BATCHABLE fields at once (vmap over runs), writing each run's
    files exactly as `transfer.run` would. Runs resume from their checkpoints if all are at the
    same iteration; otherwise they are run one by one."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from nst_jax import compiler, image, statistics, transfer
    from nst_jax.fileio import atomic_write_bytes
    from nst_jax import weights as weights_mod

    w = weights_mod.load(cfgs[0].weights)
    problems = [transfer.prepare(c, w) for c in cfgs]
    c0 = cfgs[0]
    solver = transfer.compiled_solver(problems[0].spec, c0.optimizer, c0.lr, c0.history)[0]
    stochastic = statistics.get(c0.style_statistic).stochastic
    p0 = problems[0]

    def auxes(it):
        lw = jax.tree.map(lambda *v: jnp.stack(v), *[p.loss_weights for p in problems])
        keys = jnp.stack([transfer.step_key(c, it) for c in cfgs])
        return (p0.params, p0.targets, lw, keys)

    in_axes = (0, (None, None, 0, 0))
    init = compiler.jit(jax.vmap(solver.init, in_axes=in_axes))
    step = compiler.jit(jax.vmap(solver.step, in_axes=in_axes), donate_argnums=0)
    x0 = jnp.stack([jnp.asarray(p.x0[None]) for p in problems])
    aux = auxes(0)
    template = jax.eval_shape(solver.init, x0[0], (p0.params, p0.targets, p0.loss_weights, aux[3][0]))
    states, elapsed = [], 0.0
    for c in cfgs:
        paths = transfer.output_paths(c.output)
        if paths["checkpoint"].exists():
            st, meta = transfer.load_checkpoint(paths["checkpoint"], template)
            if meta.get("config_hash") != c.result_hash():
                raise NSTError(f"checkpoint {paths['checkpoint']} was made with other settings; delete it")
            states.append(st)
            elapsed = max(elapsed, float(meta.get("seconds", 0.0)))
    if states and (len(states) != len(cfgs) or len({int(s.iteration) for s in states}) != 1):
        for c in cfgs:  # runs at different points: one by one
            transfer.run(c, progress=False, save_at=transfer.log_schedule, on_step=progress)
        return
    if states:
        state = jax.tree.map(lambda *v: jnp.stack(v), *states)
        for c in cfgs:
            transfer._rewrite_log(transfer.output_paths(c.output)["log"], int(states[0].iteration))
    else:
        state = init(x0, aux)
        for i, c in enumerate(cfgs):
            rec = {"iteration": 0, "loss": float(state.value[i]),
                   **{k: float(v[i]) for k, v in state.parts.items()}, "seconds": 0.0}
            atomic_write_bytes(transfer.output_paths(c.output)["log"],
                                     lambda f, rec=rec: f.write((json.dumps(rec) + "\n").encode()))
    it, target = int(state.iteration[0]), c0.iterations
    logs = [open(transfer.output_paths(c.output)["log"], "a") for c in cfgs]
    t0 = time.perf_counter()
    pick = lambda st, i: jax.tree.map(lambda a: a[i], st)
    try:
        while it < target:
            if stochastic:
                aux = auxes(it)
            state = step(state, aux)
            it += 1
            values = np.asarray(state.value)
            parts = {k: np.asarray(v) for k, v in state.parts.items()}
            now = elapsed + time.perf_counter() - t0
            for i, c in enumerate(cfgs):
                logs[i].write(json.dumps({"iteration": it, "loss": float(values[i]),
                                          **{k: float(v[i]) for k, v in parts.items()},
                                          "seconds": round(now, 4)}) + "\n")
                if transfer.log_schedule(it) and it < target:
                    image.save_image(transfer.intermediate_path(c.output, it), np.asarray(state.x[i])[0])
            if not np.all(np.isfinite(values)):
                bad = [cfgs[i].output for i in np.flatnonzero(~np.isfinite(values))]
                raise NSTError(f"the loss became NaN or inf at iteration {it} in {', '.join(bad)}")
            if c0.checkpoint_every and it % c0.checkpoint_every == 0 and it < target:
                for i, c in enumerate(cfgs):
                    logs[i].flush()
                    transfer.save_checkpoint(transfer.output_paths(c.output)["checkpoint"], pick(state, i),
                                             {"config_hash": c.result_hash(), "solver": c.optimizer,
                                              "iteration": it, "seconds": now})
            if progress is not None:
                progress(it, len(cfgs))
    finally:
        for log in logs:
            log.close()
    seconds = elapsed + time.perf_counter() - t0
    for i, (c, p) in enumerate(zip(cfgs, problems)):
        transfer.finish(c, pick(state, i), p, seconds, {"batched_with": len(cfgs)})


def _finished(cfg: Config) -> bool:
    side = Path(cfg.output).with_suffix(".json")
    if not side.exists():
        return False
    try:
        return json.loads(side.read_text()).get("iteration", -1) >= cfg.iterations
    except ValueError:
        return False


def sweep(iterations: int, grid: dict[str, list], out: Path, base: dict[str, Any], batch: int = 1,
          show_progress: bool = True) -> list[tuple[str, Config]]:
    """Run (or continue) every grid point to `iterations`; returns the runs."""
    from nst_jax import transfer
    from nst_jax import weights as weights_mod

    out.mkdir(parents=True, exist_ok=True)
    runs = expand(grid, {**base, "iterations": iterations}, out)
    manifest = {"grid": grid, "base": {k: v for k, v in base.items()}, "iterations": iterations,
                "runs": {name: str(Path(cfg.output).relative_to(out)) for name, cfg in runs}}
    from nst_jax.fileio import atomic_write_bytes
    atomic_write_bytes(out / "sweep.json", lambda f: f.write(json.dumps(manifest, indent=2, default=str).encode()))
    todo = [(n, c) for n, c in runs if not _finished(c)]
    done_its = {n: _iteration_of(c) for n, c in todo}
    total = sum(iterations - done_its[n] for n, _ in todo)
    bar = None
    if show_progress and total > 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=f"sweep: {len(todo)}/{len(runs)} runs to go", unit="it", file=sys.stderr)
    w = weights_mod.load(base.get("weights"))
    failures: list[str] = []
    try:
        groups: dict[tuple, list] = {}
        for n, c in todo:
            groups.setdefault(_batch_key(c), []).append((n, c))
        for members in groups.values():
            for start in range(0, len(members), max(1, batch)):
                chunk = members[start:start + max(1, batch)]
                if bar is not None:
                    bar.set_postfix_str(", ".join(n for n, _ in chunk)[:60])
                try:
                    if len(chunk) == 1:
                        transfer.run(chunk[0][1], progress=False, loaded_weights=w, save_at=transfer.log_schedule,
                                     on_step=(lambda it: bar.update(1)) if bar is not None else None)
                    else:
                        run_batch([c for _, c in chunk],
                                  progress=(lambda it, n: bar.update(n)) if bar is not None else None)
                except NSTError as err:  # one failed run (or batch) does not stop the sweep
                    failures.extend(n for n, _ in chunk)
                    for n, c in chunk:
                        (Path(c.output).parent / "error.txt").write_text(f"{err}\n")
                    print(f"warning: {', '.join(n for n, _ in chunk)}: {err}", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise NSTError(f"{len(failures)} run(s) failed (see error.txt in their folders): {', '.join(failures)}")
    return runs


def _iteration_of(cfg: Config) -> int:
    """The iteration a run's log has reached (0 if none), for the progress total."""
    log = Path(f"{Path(cfg.output).with_suffix('')}.losses.jsonl")
    ckpt = Path(f"{Path(cfg.output).with_suffix('')}.ckpt.npz")
    if not (log.exists() and ckpt.exists()):
        return 0
    try:
        import numpy as np
        with np.load(ckpt) as data:
            return int(json.loads(bytes(data["meta"]).decode())["iteration"])
    except Exception:  # a broken checkpoint is reported by the run itself
        return 0


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nst_jax.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("iterations", type=int, help="the number of iterations every run should reach")
    p.add_argument("--grid", default=None, help="TOML or JSON file of lists (default: 7 inits × k ∈ {10, 100, 1000})")
    p.add_argument("--out", default="out", help="folder of the runs and the report")
    p.add_argument("--content", default=str(SAMPLES / "chelsea.png"))
    p.add_argument("--style", nargs="+", default=[str(SAMPLES / "ihc.png")])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--checkpoint-every", type=int, default=25)
    p.add_argument("--batch", type=int, default=1, help="optimise up to N compatible runs at once (vmap)")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.iterations < 0:
            raise NSTError("ITERATIONS must be ≥ 0")
        if args.batch < 1:
            raise NSTError("--batch must be ≥ 1")
        grid = load_grid(args.grid)
        base = {"content": args.content, "styles": tuple(args.style), "size": args.size,
                "checkpoint_every": args.checkpoint_every, "print_every": 0}
        failed = None
        try:
            sweep(args.iterations, grid, Path(args.out), base, args.batch, not args.quiet)
        except NSTError as err:
            failed = err
        if not args.no_report and (Path(args.out) / "sweep.json").exists():
            from nst_jax.report import write_report
            print(f"wrote {write_report(Path(args.out))}")
        if failed is not None:
            raise failed
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
