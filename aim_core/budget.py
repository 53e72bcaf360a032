"""Cost limits: what a workstream and a whole ``aim run`` may spend.

Spending is what the tools themselves reported (``InvocationResult.usage.cost_usd``,
US dollars); an attempt whose tool reported no cost counts as 0. The limits are
checked before every attempt -- the first, each retry, each repair, each
fallback -- so the attempt that crosses a limit finishes, and nothing starts
after it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aim_core.models import Failure, Invocation
from aim_core.values import Value

if TYPE_CHECKING:
    from aim_core.attempt import AttemptOutcome
    from aim_core.runstate import RunState


class BudgetStop(Value):
    """Why no further attempt may start: ``limit_usd`` of ``source`` (the field or
    option that set it) is spent (``spent_usd``)."""

    __slots__ = ("limit_usd", "source", "spent_usd")
    source: str
    limit_usd: float
    spent_usd: float

    def __init__(self, *, source: str, limit_usd: float, spent_usd: float) -> None:
        self._init(source=source, limit_usd=limit_usd, spent_usd=spent_usd)

    def message(self) -> str:
        """The sentence recorded and printed."""
        return (
            f"Cost limit reached: {dollars(self.spent_usd)} spent of {dollars(self.limit_usd)} "
            f"({self.source}); no further retry, repair or fallback was started"
        )


def dollars(value: float) -> str:
    """``$0.42``, ``$0.0035``, ``$12``: cents, or four places below a cent."""
    if value >= 100 or value == int(value):
        return f"${value:,.0f}" if value == int(value) else f"${value:,.2f}"
    return f"${value:.2f}" if value >= 0.01 else f"${value:.4f}"


class RunBudget:
    """The per-run limit (config ``max_cost_usd`` or ``aim run --max-cost``), shared by
    every workstream of one command; safe for several threads.

    :param limit_usd: US dollars, or None for no limit.
    :param source: how the user set it, for the message.
    """

    def __init__(self, limit_usd: float | None = None, source: str = "max_cost_usd"):
        self.limit_usd = limit_usd
        self.source = source
        self._spent = 0.0
        self._lock = threading.Lock()

    def add(self, cost_usd: float | None) -> None:
        """Count what one attempt's tool reported spending."""
        if cost_usd:
            with self._lock:
                self._spent += cost_usd

    @property
    def spent_usd(self) -> float:
        """What every attempt of this run has spent so far."""
        with self._lock:
            return self._spent


def spent(costs: Iterable[float | None]) -> float:
    """The sum of the reported costs (None counts 0)."""
    return sum(c for c in costs if c)


def check(
    workstream_limit: float | None, workstream_spent: float, run: RunBudget
) -> tuple[BudgetStop | None, float | None]:
    """``(stop, left)``: why nothing more may start (or None), and the dollars left under
    the tighter limit (None: no limit) -- what a tool with a budget flag is given."""
    lefts: list[tuple[float, BudgetStop]] = []
    if workstream_limit is not None:
        stop = BudgetStop(
            source="capability_payload.max_cost_usd",
            limit_usd=workstream_limit,
            spent_usd=workstream_spent,
        )
        lefts.append((workstream_limit - workstream_spent, stop))
    if run.limit_usd is not None:
        stop = BudgetStop(source=run.source, limit_usd=run.limit_usd, spent_usd=run.spent_usd)
        lefts.append((run.limit_usd - run.spent_usd, stop))
    if not lefts:
        return None, None
    left, stop = min(lefts, key=lambda item: item[0])
    if left <= 0:
        return stop, 0.0
    return None, left


def record_stop(
    run: RunState, stop: BudgetStop, payload: Invocation, tool_id: str
) -> AttemptOutcome:
    """Record that ``tool_id``'s next attempt was not started (``budget_exceeded``);
    the outcome ends the workstream (exit code 1)."""
    from aim_core.attempt import AttemptOutcome

    message = stop.message()
    run.record(
        tool_id=None,
        payload=payload,
        message=message,
        attempt=0,
        failure=Failure.BUDGET_EXCEEDED,
        extra={
            "budget": {
                "source": stop.source,
                "limit_usd": stop.limit_usd,
                "spent_usd": round(stop.spent_usd, 6),
            }
        },
    )
    return AttemptOutcome(
        tool_id=tool_id, attempt=0, message=message, failure=Failure.BUDGET_EXCEEDED
    )
