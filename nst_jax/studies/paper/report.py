"""The write-up of the study: `README.md` with every section, made only from what the runs wrote and
what was measured on their results. Every sentence of findings is computed from the numbers beside
it, states its spread over the image pairs, and says nothing about a case that was not run."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from nst_jax.files.fileio import write_text
from nst_jax.studies.paper import gram, hyper, reduction, statistics
from nst_jax.studies.paper.tables import read_json

def write(out: Path, scale, experiments: dict, seconds: dict, command: str) -> Path:
    import jax
    runs = out / "runs"
    total = sum(seconds.values())
    plain = f"nst-jax paper --out {out} --scale {scale.name}"
    parts = [f"# Dissecting Neural Style Transfer: the results, regenerated", "",
             f"Results for the experiments of *Dissecting Neural Style Transfer* (Xi Du, ANU), made by nst_jax "
             f"with `{command}` at the **{scale.name}** scale ({scale.size} px). The paper's own scale (512 px, up "
             "to 5000 iterations) is `--scale cluster` (for a GPU node or, with `--engine ray --address auto`, a "
             "Ray cluster). Rerunning the command continues unfinished runs and redraws everything from the runs' "
             "files.", "",
             f"Machine: {platform.machine()} {platform.processor() or ''}, {jax.device_count()} "
             f"{jax.default_backend().upper()} device(s), JAX {jax.__version__}; written {time.strftime('%Y-%m-%d')}. "
             "Wall time (summed over the invocations that did the work): "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + f"; total {total / 60:.1f} min.", "",
             "Contents: [3.4 the Gram matrix](#34-the-gram-matrix-what-each-layers-statistics-hold-and-the-mmd-view) · "
             "[3.5 statistics](#35-other-ways-to-remove-spatial-information-statistics-that-imply-each-other) · "
             "[3.6 hyper-parameters](#36-hyper-parameters-initial-image-k-iterations) · "
             "[network reduction](#network-reduction-how-much-of-vgg19-does-style-transfer-need)", ""]
    parts.append(gram.section(out, scale, experiments["gram"], read_json(runs / "mmd.json"), plain))
    parts.append(statistics.section(out, scale, experiments["statistics"], read_json(runs / "statistics.json"), plain))
    parts.append(hyper.section(out, scale, experiments["hyper"], plain))
    parts.append(reduction.section(out, scale, read_json(runs / "reduction.json"), plain))
    path = out / "README.md"
    write_text(path, "\n".join(parts))
    return path
