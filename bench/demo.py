"""The README's demo, made by the README's own main job: `python -m bench.demo [--out docs]`.

Runs the main job exactly as the README's set-up command writes it (the command is read from the README,
so the two cannot drift apart), in a temporary folder, on this machine with its own convolution forms,
then puts its result beside the documentation: `demo.png`, its sidecar `demo.json`, its loss log
`demo.losses.jsonl` and the loss curves `demo_loss.png`. Run it again whenever the default convolution
forms or anything else that moves the result changes; the result is reproducible to the bit on one
machine, not across machines (docs/getting-started.md says by how much it moves).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = "result.png"


def readme_main_job(readme: Path = ROOT / "README.md") -> list[str]:
    """The arguments of the main job in the README's set-up command (`python -m nst_jax.run …`)."""
    for line in readme.read_text().splitlines():
        found = re.search(r"python -m nst_jax\.run (.+)$", line)
        if found and "pip install -e ." in line:
            return shlex.split(found.group(1))
    raise SystemExit(f"error: {readme} has no set-up line that installs nst_jax and runs python -m nst_jax.run")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs"), help="folder of demo.png and its files (default: docs)")
    args = p.parse_args(argv)
    job = readme_main_job()
    if job[job.index("-o") + 1] != OUTPUT:
        raise SystemExit(f"error: the README's main job writes {job[job.index('-o') + 1]}, not {OUTPUT}")
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "nst_jax").symlink_to(ROOT / "nst_jax")   # the command's sample paths are relative
        print("running: python -m nst_jax.run " + shlex.join(job), flush=True)
        done = subprocess.run([sys.executable, "-m", "nst_jax.run", *job], cwd=folder)
        if done.returncode != 0:
            return done.returncode
        made = Path(folder) / OUTPUT
        shutil.copyfile(made, out / "demo.png")
        shutil.copyfile(made.with_suffix(".json"), out / "demo.json")
        shutil.copyfile(Path(folder) / "result.losses.jsonl", out / "demo.losses.jsonl")
    from nst_jax.files.runfiles import read_log
    from nst_jax.studies.report import plot_losses
    plot_losses({"demo": read_log(out / "demo.losses.jsonl")}, out / "demo_loss.png", "the main job (the demo)")
    record = json.loads((out / "demo.json").read_text())
    print(f"wrote {out / 'demo.png'}: loss {record['loss']:.6g} after {record['iteration']} iterations, "
          f"on {record['device']}; quote this loss where the docs name the demo's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
