"""The pictures of `bench.video`: a grid of frames by method, an animated side-by-side GIF (the flicker
of independent frames is seen, not read), and the per-frame warping error of each method."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHOWN = ("independent", "short-term", "long-term", "multi-pass")


def _frames(row: dict) -> list[np.ndarray]:
    from nst_jax.files import image
    return [image.load_image(p) for p in sorted(Path(row["frames_dir"]).glob("*.png"))]


def _pick(rows: list[dict]) -> list[dict]:
    return [next(r for r in rows if r["label"].startswith(name)) for name in SHOWN]


def write_previews(clip, rows: list[dict], folder: Path) -> None:
    from PIL import Image

    from nst_jax.files import image
    from nst_jax.studies.figures import pyplot
    from nst_jax.files.fileio import save_figure
    folder.mkdir(parents=True, exist_ok=True)
    shown = _pick(rows)
    frames = {r["label"]: _frames(r) for r in shown}
    plt = pyplot()
    columns = list(range(0, len(clip.frames), max(1, len(clip.frames) // 4)))[:4]
    fig, axes = plt.subplots(len(shown) + 1, len(columns), figsize=(2.6 * len(columns), 1.9 * (len(shown) + 1)))
    for j, t in enumerate(columns):
        axes[0, j].imshow(clip.frames[t])
        axes[0, j].set_title(f"frame {t + 1}", fontsize=9)
        for i, r in enumerate(shown, start=1):
            axes[i, j].imshow(frames[r["label"]][t])
    for i, label in enumerate(["input"] + [f"{r['label']}\n{r['error']:.1f} levels" for r in shown]):
        axes[i, 0].set_ylabel(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, folder / "preview.jpg", dpi=110, pil_kwargs={"quality": 88})
    plt.close(fig)
    gif = []
    for t in range(len(clip.frames)):
        strip = np.concatenate([clip.frames[t]] + [frames[r["label"]][t] for r in shown], axis=1)
        gif.append(Image.fromarray(image.to_uint8(strip)))
    gif[0].save(folder / "preview.gif", save_all=True, append_images=gif[1:], loop=0,
                duration=int(1000 / float(clip.fps)))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for r in rows:
        ax.plot(range(2, len(r["per frame"]) + 2), r["per frame"], marker="o", ms=3, label=r["label"])
    ax.set_xlabel("frame")
    ax.set_ylabel("warping error (8-bit levels)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder / "warping_error.png", dpi=110)
    plt.close(fig)
