"""Verdicts that hold beyond one run: each reduction's mean and 95 % interval over rounds.

One run per side, always baseline first, puts any drift of a shared machine on
one side and gives no spread. So baseline and target alternate for ``repeat``
rounds, each round gives one reduction per metric, and a target is judged on
the Student-t 95 % interval of those reductions:

* **met** when the whole interval reaches the plan's reduction;
* **missed** when the whole interval falls short of it;
* **inconclusive** when the interval straddles it (or one round gives no interval);
* **not measurable** when the baseline never had what the metric counts (no pool
  errors at this load): nothing was reduced, so the target cannot be met.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "INCONCLUSIVE_EXIT",
    "STATUSES",
    "Interval",
    "Judgement",
    "interval",
    "judge",
    "t_quantile",
]

STATUSES = ("met", "missed", "inconclusive", "not measurable")
#: the exit code of a comparison whose verdict the rounds could not settle
INCONCLUSIVE_EXIT = 3

# Student's t, two-sided 95 % (the 0.975 quantile), by degrees of freedom 1..30;
# past 30 the normal 1.96 is within 2 % of it.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(dof: int) -> float:
    """The two-sided 95 % Student-t factor for ``dof`` degrees of freedom (at least 1)."""
    if dof < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


@dataclass(frozen=True, kw_only=True)
class Interval:
    """The mean of ``n`` values and its 95 % interval; one value has no interval."""

    mean: float
    low: float | None
    high: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, *, percent: bool = False, unit: str = "") -> str:
        def show(value: float) -> str:
            return f"{value:.0%}" if percent else f"{value:.3g}{unit}"

        if self.low is None or self.high is None:
            return f"{show(self.mean)} (one round: no interval)"
        return f"{show(self.mean)} (95% interval {show(self.low)} to {show(self.high)}, n={self.n})"


def interval(
    values: Sequence[float], *, floor: float | None = None, ceiling: float | None = None
) -> Interval:
    """Mean and Student-t 95 % interval of ``values`` (independent rounds), cut to what the
    quantity can be (a time is never below 0 ms, a share never above 100 %): three rounds of
    a wide spread otherwise give an interval past them."""
    if not values:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean=mean, low=None, high=None, n=1)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    low, high = mean - half, mean + half
    if floor is not None:
        low = max(floor, low)
    if ceiling is not None:
        high = min(ceiling, high)
    return Interval(mean=mean, low=low, high=high, n=len(values))


@dataclass(frozen=True, kw_only=True)
class Judgement:
    status: str
    reduction: Interval | None
    reason: str


def judge(
    *, metric: str, baseline: Sequence[float], target: Sequence[float], wanted: float, unit: str
) -> Judgement:
    """The verdict on "``metric`` reduced by ``wanted``" from paired rounds' values.

    Each round's reduction is ``(baseline - target) / baseline``. A round whose
    baseline is 0 has no reduction: if every round is like that, the metric is
    not measurable at this load, unless the target had some, which is a miss
    (it went up from nothing).
    """
    if len(baseline) != len(target) or not baseline:
        raise ValueError("judge needs one baseline and one target value per round")
    b_mean, t_mean = statistics.fmean(baseline), statistics.fmean(target)
    sides = f"{b_mean:.4g}{unit} -> {t_mean:.4g}{unit} (mean of {len(baseline)} rounds)"
    cuts = [(b - t) / b for b, t in zip(baseline, target, strict=True) if b > 0]
    if not cuts:
        if t_mean > 0:
            return Judgement(
                status="missed",
                reduction=None,
                reason=f"{metric}: {sides}: the baseline had none at this load and the target "
                f"had some, so it rose instead of falling by the plan's {wanted:.0%}",
            )
        return Judgement(
            status="not measurable",
            reduction=None,
            reason=f"{metric}: not measurable at this load: the baseline had none in any "
            f"round, so no reduction can be shown (the plan's -{wanted:.0%} is not met); "
            "raise --users until the baseline has some",
        )
    cut = interval(cuts)
    dropped = len(baseline) - len(cuts)
    note = f"; {dropped} round(s) with none on the baseline left out" if dropped else ""
    if cut.low is not None and cut.low >= wanted:
        status = "met"
    elif cut.high is not None and cut.high < wanted:
        status = "missed"
    else:
        status = "inconclusive"
    said = {
        "met": "the whole interval meets",
        "missed": "the whole interval misses",
        "inconclusive": "the interval straddles" if cut.low is not None else "no interval for",
    }[status]
    return Judgement(
        status=status,
        reduction=cut,
        reason=f"{metric}: {sides}; reduction {cut.describe(percent=True)}: {said} the "
        f"plan's -{wanted:.0%}{note}",
    )
