"""Instructions in the paper's Table 5 (UrbanGPT) format, written from the window index.

A window is named by its first target slot ``t``; its history covers slots ``[t-L, t)`` and its target
``[t, t+H)``, so dates are ``dataset.start + slot * interval``. Two layouts share one model:

* ``region`` — one prompt per region and window, with the region's name and POI categories (as
  UrbanGPT); the forward pass sees B*N prompts.
* ``city`` — one prompt per window carrying every region's ``<ST_HIS>`` and ``<ST_PRE>`` tokens in
  region order; one forward pass per window (the CPU default). There is no room for each region's POI
  text, so the prompt names the city, the period and the task only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from flowdistill.teacher.backbone import ST_END, ST_HIS, ST_PRE, ST_START

LAYOUTS = ("city", "region")


@dataclass
class PromptFacts:
    """What the prompts say about a dataset (never its flows)."""

    city: str
    region_names: list[str]
    start: str
    interval_minutes: int
    input_len: int = 12
    output_len: int = 12
    pois: list[list[str]] | None = None
    flow_kind: str = "taxi"
    extra: dict[str, Any] = field(default_factory=dict)
    # Several sources on one slot axis (teacher.sources): [{"offset", "kind", "start", ...}, ...]
    segments: list[dict[str, Any]] | None = None

    @classmethod
    def from_dataset(
        cls, ds: Any, input_len: int = 12, output_len: int = 12, segments: list[Any] | None = None
    ) -> PromptFacts:
        from flowdistill.teacher.sources import flow_kind

        kind = flow_kind(ds)
        return cls(
            city=ds.city or ds.name,
            region_names=list(ds.region_names),
            start=pd.Timestamp(ds.start).isoformat(),
            interval_minutes=int(ds.interval_minutes),
            input_len=input_len,
            output_len=output_len,
            pois=[list(p) for p in ds.pois] if ds.pois is not None else None,
            flow_kind=kind,
            segments=[s.to_dict() for s in segments] if segments else None,
        )

    @property
    def num_regions(self) -> int:
        return len(self.region_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def locate(facts: PromptFacts, slot: int) -> tuple[str, pd.Timestamp]:
    """(flow kind, timestamp) of a slot on the (possibly multi-source) slot axis."""
    kind, start, offset = facts.flow_kind, facts.start, 0
    for seg in facts.segments or []:
        if int(seg["offset"]) <= slot:
            kind, start, offset = seg["kind"], seg["start"], int(seg["offset"])
    minutes = facts.interval_minutes * (int(slot) - offset)
    return kind, pd.Timestamp(start) + pd.Timedelta(minutes=minutes)


def slot_time(facts: PromptFacts, slot: int) -> pd.Timestamp:
    return locate(facts, slot)[1]


def fmt_time(ts: pd.Timestamp) -> str:
    """'January 1, 2019, 06:00, Tuesday' — UrbanGPT's date style."""
    return f"{ts.strftime('%B')} {ts.day}, {ts.year}, {ts.strftime('%H:%M')}, {ts.strftime('%A')}"


def period(facts: PromptFacts, first: int, count: int) -> str:
    """'<first slot> to <last slot>, with data points recorded at N-minute intervals'."""
    a, b = slot_time(facts, first), slot_time(facts, first + count - 1)
    return (
        f"'{fmt_time(a)} to {fmt_time(b)}, with data points recorded at "
        f"{facts.interval_minutes}-minute intervals'"
    )


def region_info(facts: PromptFacts, region: int, max_pois: int = 10) -> str:
    name = facts.region_names[region]
    cats = (facts.pois or [[]] * facts.num_regions)[region][:max_pois]
    if not cats:
        return f"This region is {name}; no POI description is available for it."
    return (
        f"This region is {name} in {facts.city} and encompasses various POIs, covering "
        f"{', '.join(cats)} categories."
    )


def region_prompt(facts: PromptFacts, window: int, region: int, max_pois: int = 10) -> str:
    """One region's instruction for the window whose first target slot is ``window``."""
    L, H = facts.input_len, facts.output_len
    k = locate(facts, window)[0]
    return (
        f"Given the historical data for {k} flow over {L} time steps in a specific region of "
        f"{facts.city}, the recorded {k} inflow and outflow are encoded as "
        f"{ST_START}{ST_HIS}{ST_END}. The recording time of the historical data is "
        f"{period(facts, window - L, L)}. Here is the region information: "
        f"{region_info(facts, region, max_pois)} Now we want to predict the {k} inflow and outflow "
        f"for the next {H} time steps during the time period of {period(facts, window, H)}. "
        f"Please conduct an analysis of the traffic patterns in this region, taking into account "
        f"the provided time and regional information, and then generate the predictive tokens for "
        f"regression. Predictive tokens: {ST_START}{ST_PRE}{ST_END}"
    )


def city_prefix(facts: PromptFacts) -> str:
    """The part of every city prompt that never changes: its keys/values are computed once."""
    return (
        f"Inflow and outflow of {facts.num_regions} regions of {facts.city}, {facts.input_len} "
        f"steps at {facts.interval_minutes}-minute intervals in, the next {facts.output_len} out."
    )


def city_body(facts: PromptFacts, window: int) -> str:
    """The window's own part of the city prompt: mode, dates, and the region tokens."""
    n = facts.num_regions
    kind, t_pre = locate(facts, window)
    t_his = locate(facts, window - facts.input_len)[1]
    return (
        f" {kind.capitalize()} flow from {fmt_time(t_his)}: {ST_START}{ST_HIS * n}{ST_END} "
        f"Predict from {fmt_time(t_pre)}: {ST_START}{ST_PRE * n}{ST_END}"
    )


def city_prompt(facts: PromptFacts, window: int) -> str:
    """One compact instruction for every region of the city at once (regions in dataset order).

    Every token here is paid for every window, so only the first slot of the history and of the
    target is written out (the step count and interval give the rest), and the constant part comes
    first (`city_prefix`) so the model can compute it once per batch.
    """
    return city_prefix(facts) + city_body(facts, window)


def render(facts: PromptFacts, windows: list[int], layout: str, max_pois: int = 10) -> list[str]:
    """Prompts for a batch: B (city) or B*N in window-major, region-minor order (region)."""
    if layout == "city":
        return [city_prompt(facts, int(w)) for w in windows]
    if layout == "region":
        return [
            region_prompt(facts, int(w), r, max_pois)
            for w in windows
            for r in range(facts.num_regions)
        ]
    raise ValueError(f"unknown prompt layout {layout!r}; choose from {LAYOUTS}")
