"""The stopping rule: end a run early once its loss has stopped falling (`--tol`, `--tol-window`).

torch.optim.LBFGS stops on `tolerance_change` (an absolute change of the loss between two iterations)
and artistic-videos on a relative change of the loss over an interval of iterations. nst_jax uses the
relative decrease per iteration, averaged over the last `window` iterations:

    stop at iteration t  when  0 < L[t − window] − L[t] ≤ tol · window · L[t]

A window whose loss did not fall at all is not taken as convergence: early in an L-BFGS run the
safeguard can reject a few steps in a row (the loss then stays exactly the same, see `solvers.lbfgs`),
and a loss that rose is still moving. The rule reads only the logged losses, so a run resumed from its
checkpoint (whose log holds the window's values) stops at the same iteration as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, NamedTuple


class StopRule(NamedTuple):
    tol: float = 0.0     # 0: never stop early
    window: int = 20

    @property
    def active(self) -> bool:
        return self.tol > 0

    def met(self, losses: Iterable[float]) -> bool:
        """True if the last `window` + 1 losses (oldest first) meet the rule."""
        recent = list(losses)[-(self.window + 1):]
        if not self.active or len(recent) <= self.window:
            return False
        old, new = recent[0], recent[-1]
        if not (math.isfinite(old) and math.isfinite(new)):
            return False
        return 0 < old - new <= self.tol * self.window * abs(new)

    def tracker(self, earlier: Iterable[float] = ()) -> deque:
        """The losses the rule looks at, seeded with a resumed run's logged ones (oldest first)."""
        return deque(list(earlier)[-(self.window + 1):], maxlen=self.window + 1)

    def record(self) -> dict:
        """What a run that stopped by this rule records in its sidecar (`"converged"`)."""
        return {"tol": self.tol, "window": self.window}

    def covers(self, record: dict | None) -> bool:
        """True if a result whose sidecar is `record` stopped by a rule at least as loose as this one's
        (the same window, a tol ≤ this tol): it is finished, whatever the iteration target."""
        converged = record.get("converged") if isinstance(record, dict) else None
        if not self.active or not isinstance(converged, dict):
            return False
        tol, window = converged.get("tol"), converged.get("window")
        return (isinstance(tol, (int, float)) and not isinstance(tol, bool) and window == self.window
                and 0 < tol <= self.tol)

    def describe(self) -> str:
        return f"the loss fell by less than {self.tol:g} of itself per iteration over the last {self.window}"
