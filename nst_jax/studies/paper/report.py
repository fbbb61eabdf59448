"""The write-up of the study: `README.md` with every section, made only from what the runs wrote and
what was measured on their results. Every sentence of findings is computed from the numbers beside
it, states its spread over the image pairs, and says nothing about a case that was not run."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from nst_jax.files.fileio import write_text
from nst_jax.studies.paper import convergence, discussion, front, gram, hyper, judges, reduction, statistics
from nst_jax.studies.paper.common import finished
from nst_jax.studies.paper.tables import read_json

CONTENTS = ("[convergence](#convergence-the-stopping-rule-its-evidence-and-how-every-study-stopped) · "
            "[3.4 the Gram matrix](#34-the-gram-matrix-what-each-layers-statistics-hold-and-the-mmd-view) · "
            "[3.5 statistics](#35-other-ways-to-remove-spatial-information-statistics-that-imply-each-other) · "
            "[3.6 hyper-parameters](#36-hyper-parameters-initial-image-k-iterations) · "
            "[3.7 evaluating the result](#37-evaluating-the-result-independent-judges-the-trade-off-and-how-much-network-is-needed) · "
            "[3.7 network reduction](#37-network-reduction-how-much-of-vgg19-does-style-transfer-need) · "
            "[4 results and discussion](#4-results-and-discussion) · [5 conclusion](#5-conclusion)")


def _machines(seconds: dict, sittings: list[dict], steps: dict | None = None) -> str:
    import jax
    total = sum(seconds.values())
    cpus = list(dict.fromkeys(e["cpu"] for e in sittings if e["experiments"]))
    text = (f"JAX {jax.__version__}, {jax.device_count()} {jax.default_backend().upper()} device(s); written "
            f"{time.strftime('%Y-%m-%d')}. Wall time (summed over the sittings that did the work, time the "
            "process was stopped left out since 2026-12-07): "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()) + f"; total {total / 3600:.2f} h.")
    if steps and any(steps.values()):
        text += (" In the runs' own steps (their loss logs; a step over a minute and 50× its run's median is taken "
                 "for a stop and left out): " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in steps.items() if v)
                 + f"; total {sum(steps.values()) / 3600:.2f} h.")
    if len(cpus) > 1:
        text += (" **Made across CPUs**: " + "; ".join(
            f"{e['started']} on {e['cpu']} ({', '.join(e['experiments'])})" for e in sittings if e["experiments"])
                 + ". A run's seconds per iteration depend on the CPU it ran on, and so do its convolution forms (the "
                 "planner's choice per machine): its result differs by their float32-level rounding, which L-BFGS "
                 "can carry further over many iterations.")
    elif cpus:
        text += f" Every sitting ran on one CPU: {cpus[0]} ({len([e for e in sittings if e['experiments']])} sittings)."
    return text


def _arithmetic(experiments: dict) -> str:
    """The finished runs' arithmetic, from their sidecars (the network reduction's aside): the precision,
    and how often each convolution form (the planner's choice on the machine, `docs/benchmarks.md`)
    computed a layer's forward pass. Names read back that nst_jax does not know count as 'other'."""
    from nst_jax.model.convforms import FORMS
    from nst_jax.transfer.config import PRECISIONS
    precisions, forms = Counter(), Counter()
    for experiment in experiments.values():
        for named in experiment.runs().values():
            for _, cfg in named:
                side = finished(cfg)
                if not side:
                    continue
                precision = (side.get("config") or {}).get("precision")
                precisions[precision if precision in PRECISIONS else "other"] += 1
                chosen = side["conv_forms"].get("forms") if isinstance(side.get("conv_forms"), dict) else None
                for entry in chosen if isinstance(chosen, list) else []:
                    if isinstance(entry, list) and len(entry) > 1:
                        forms[entry[1] if entry[1] in FORMS else "other"] += 1
    if not precisions:
        return ""
    total = sum(forms.values())
    text = (f"Arithmetic (from the sidecars of the {sum(precisions.values())} finished runs outside the network "
            "reduction): precision " + ", ".join(f"{p} ({n} runs)" for p, n in precisions.most_common()))
    if total:
        text += ("; their layers' forward convolutions were computed by the forms "
                 + ", ".join(f"`{f}` {n / total:.0%}" for f, n in forms.most_common()))
    if forms["f4fa3"]:
        text += (". `f4fa3` splits each float32 number into two bfloat16 parts and sums three products on AMX; "
                 "after 300 iterations its loss was within 0.20 % of the pure float32 forms' on three pairs "
                 "(docs/benchmarks.md)")
    return text + "."


def write(out: Path, scale, experiments: dict, seconds: dict, command: str, sittings: list[dict] = (),
          steps: dict | None = None) -> Path:
    runs = out / "runs"
    plain = f"nst-jax paper --out {out} --scale {scale.name}"
    parts = ["# Dissecting Neural Style Transfer: the results, regenerated", ""]
    parts += [f"Results for the experiments of *Dissecting Neural Style Transfer* (Xi Du, ANU), made by nst_jax "
              f"with `{command}` at the **{scale.name}** scale ({scale.size} px, {len(scale.pairs)} pairs"
              + (f", every run to convergence: `--tol {scale.tol:g}`, capped at {scale.hyper_iterations} iterations"
                 if scale.tol else "") + "). The paper's own scale (512 px, up to 5000 iterations) is `--scale "
              "cluster` (for a GPU node or, with `--engine ray --address auto`, a Ray cluster). Rerunning the command "
              "continues unfinished runs and redraws everything from the runs' files. Values are the median "
              "[min – max] over the pairs, and every finding says on how many pairs it holds.", "",
              _machines(seconds, list(sittings), steps), "", _arithmetic(experiments), ""]
    head = front.section(out, scale, experiments["front"], plain) if scale.front is not None else ""
    if head and "Not run yet" not in head:
        parts.append(head)
    parts += ["Contents: " + CONTENTS, ""]
    mmd, cross = read_json(runs / "mmd.json"), read_json(runs / "statistics.json")
    reduced, judged = read_json(runs / "reduction.json"), read_json(runs / "judges.json")
    studies = {"3.6 initial images × k": convergence.run_records(experiments["hyper"]),
               "3.5 statistics": convergence.run_records(experiments["statistics"]),
               "3.4 style reconstructions": convergence.run_records(experiments["gram"]),
               "front figure": convergence.run_records(experiments["front"])}
    if reduced:
        studies["3.7 network reduction"] = [{"converged": bool(r.get("converged")), "iterations": r.get("iterations", 0),
                                             "cap": scale.reduction_iterations} for r in reduced]
    parts.append(convergence.section(out, scale, experiments["convergence"], studies, plain))
    parts.append(gram.section(out, scale, experiments["gram"], mmd, plain))
    parts.append(statistics.section(out, scale, experiments["statistics"], cross, plain))
    parts.append(hyper.section(out, scale, experiments["hyper"], plain))
    parts.append(judges.section(out, scale, judged, plain))
    parts.append(reduction.section(out, scale, reduced, plain))
    every = hyper.hyper_records(experiments["hyper"])
    records = [r for r in every if r["seed"] == scale.seed]
    found = {"mmd": mmd, "cross": cross, "judges": judged, "reduction": reduced if reduced and all(
                 "full_loss_vs_full" in r for r in reduced) else None,
             "hyper": hyper.analyse_hyper(records) if records else [],
             "draws": hyper.seed_rows(records, [r for r in every if r["seed"] != scale.seed]),
             "stopped": {name: (sum(r["converged"] for r in rs), len(rs)) for name, rs in studies.items() if rs}}
    parts.append(discussion.write(out, scale, found))
    path = out / "README.md"
    write_text(path, "\n".join(parts))
    return path
