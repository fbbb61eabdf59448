"""The front-page figure: one transfer at the front size (512 px at the research scale), run to
convergence like every other run of the study, shown beside its content and style."""

from __future__ import annotations

from pathlib import Path

from nst_jax.base.errors import NSTError
from nst_jax.studies.paper.common import Experiment, Scale, base, finished, pair_name
from nst_jax.studies.paper.tables import not_run, num

HEAD = "## Front figure"


def experiment(scale: Scale, runs: Path) -> Experiment:
    sweeps = []
    if scale.front is not None:
        content, style = scale.front
        sweeps.append((pair_name(content, style), runs / "front" / pair_name(content, style), {"init": ["content"]},
                       base(scale, content, style, size=scale.front_size), scale.hyper_iterations))
    return Experiment("front figure", sweeps)


def triptych(content: Path, style: Path, result: Path, out: Path, gap: int = 8) -> None:
    """content | style | result, each scaled to the result's height (the result at its own pixels)."""
    from PIL import Image

    try:
        with Image.open(result) as r:
            r = r.convert("RGB")
        height = r.height
        panels = []
        for path in (content, style):
            with Image.open(path) as im:
                im = im.convert("RGB")
            panels.append(im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise NSTError(f"front figure: an image is unreadable ({err}); rerun its run") from None
    panels.append(r)
    sheet = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def section(out: Path, scale, experiment: Experiment, command: str) -> str:
    named = [cfg for runs in experiment.runs().values() for _, cfg in runs]
    side = finished(named[0]) if named else None
    if side is None:
        return not_run(HEAD, command, "front")
    cfg = named[0]
    path = out / "front" / "front.png"
    triptych(Path(cfg.content), Path(cfg.styles[0]), Path(cfg.output), path)
    stopped = ("stopped by the stopping rule" if isinstance(side.get("converged"), dict)
               else "stopped by the cap")
    return "\n".join([
        HEAD, "", "![front figure](front/front.png)", "",
        f"Content, style and result ({Path(cfg.content).name} with {Path(cfg.styles[0]).name}) at {cfg.size} px, "
        f"content start, k = {cfg.style_weight:g}: {side.get('iteration', '?')} L-BFGS iterations ({stopped}), "
        f"final loss {num(float(side.get('loss', float('nan'))))}. Made by `{command} --only front`.", ""])
