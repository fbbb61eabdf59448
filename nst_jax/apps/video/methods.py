"""The runs of a video, pass by pass, for each method of Ruder et al.:

- `independent`: every frame on its own, from the run's --init (flickers: each frame falls into its
  own optimum);
- `short`: each frame from the previous stylised frame warped into it, held to it by the temporal loss;
- `long`: as short, held to several earlier frames (--long-term, e.g. 1,2,4 frames back), each where
  it is the most recent to see the pixel;
- `multipass`: a first pass of independent frames, then passes in alternating directions (forward,
  backward, …) in which each frame starts from its own last result blended with its neighbour's
  result of this pass (warped), and is held to that neighbour by the temporal loss.
"""

from __future__ import annotations

from typing import NamedTuple

METHODS = ("independent", "short", "long", "multipass")


class Step(NamedTuple):
    """One frame's run in one pass."""

    pass_number: int            # from 1
    frame: int                  # the frame's index in the clip
    iterations: int
    init: str                   # 'config' (the run's --init), 'warp' (earlier[0] warped) or 'blend' (multi-pass)
    earlier: tuple[int, ...]    # the frames of this pass it is held to, most recent first

    @property
    def independent(self) -> bool:
        """Depends on no other run of its pass (the engine may run such steps in parallel)."""
        return self.init != "warp" and self.init != "blend" and not self.earlier


class Method(NamedTuple):
    name: str = "short"
    long_term: tuple[int, ...] = (1, 2, 4)
    passes: int = 4
    blend: float = 0.5

    @property
    def slots(self) -> int:
        """How many earlier frames a run's temporal term holds (0: none)."""
        return {"independent": 0, "short": 1, "long": len(self.long_term), "multipass": 1}[self.name]


def schedule(method: Method, n: int, iterations: int, frame_iterations: int) -> list[list[Step]]:
    """The steps of each pass, in the order they run. The first frame (and every frame of an independent
    pass) gets `iterations`; the others `frame_iterations`."""
    if method.name == "independent" or method.name == "multipass":
        passes = [[Step(1, i, iterations, "config", ()) for i in range(n)]]
    else:
        backs = (1,) if method.name == "short" else method.long_term
        passes = [[Step(1, 0, iterations, "config", ())] +
                  [Step(1, i, frame_iterations, "warp", tuple(i - j for j in backs if i - j >= 0))
                   for i in range(1, n)]]
    if method.name == "multipass":
        for p in range(2, method.passes + 1):
            order = list(range(n)) if p % 2 == 0 else list(range(n - 1, -1, -1))
            steps = [Step(p, order[0], frame_iterations, "own", ())]
            steps += [Step(p, f, frame_iterations, "blend", (prev,)) for prev, f in zip(order, order[1:])]
            passes.append(steps)
    return passes


def pairs(method: Method, passes: list[list[Step]], n: int) -> list[tuple[int, int]]:
    """Every (src, dst) the steps need, and the consecutive pairs the consistency measure needs."""
    need = {(i - 1, i) for i in range(1, n)}
    for steps in passes:
        need.update((e, s.frame) for s in steps for e in s.earlier)
    return sorted(need)
