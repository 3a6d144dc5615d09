"""Per-event figures of the pipeline (write units, GB-seconds, bytes), each with where it came from.

`measured.json` holds them; `meterline bench --pipeline --json` replaces the design estimates with
measurements, and `--measured FILE` lays a file of figures over the committed ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from infra.cost.inputs import CostError, decimal_of

MEASURED_JSON = Path(__file__).with_name("measured.json")

PERS = ("event", "million_events", "month", "tenant_month", "tenant", "invocation", "constant")
"""What one `value` is counted against: a flow per event, per million events, per month, per tenant
and month, per scheduled invocation; a stock per tenant; or a constant of the model."""


MIN_MAGNITUDE = Decimal("1E-12")
MAX_MAGNITUDE = Decimal("1E+15")
"""A measured figure (write units, bytes, GB-seconds per event...) far outside this range is a typo or
an attack on the review, and exact arithmetic on it would not finish: refuse it by name."""


class MeasuredError(CostError):
    pass


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: Decimal
    per: str
    unit: str
    source: str
    note: str


class Figures:
    def __init__(self, figures: Mapping[str, Figure]) -> None:
        self._figures = dict(figures)

    def get(self, name: str) -> Figure | None:
        return self._figures.get(name)

    def overlaid(self, other: Figures) -> Figures:
        return Figures({**self._figures, **other._figures})

    def __len__(self) -> int:
        return len(self._figures)


def load_figures(path: Path = MEASURED_JSON) -> Figures:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        raise MeasuredError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MeasuredError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise MeasuredError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    entries = raw.get("figures") if isinstance(raw, Mapping) else None
    if not isinstance(entries, Mapping):
        raise MeasuredError(f"{path}: expected an object with a 'figures' object")
    return Figures({name: _figure(name, entry, f"{path}: figures.{name}") for name, entry in entries.items()})


def _figure(name: str, entry: object, where: str) -> Figure:
    if not isinstance(entry, Mapping):
        raise MeasuredError(f"{where}: expected an object")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise MeasuredError(
            f"{where}: every figure needs its 'source' (command and date, or 'design estimate')"
        )
    per = entry.get("per")
    if per not in PERS:
        raise MeasuredError(f"{where}: 'per' must be one of {', '.join(PERS)}, not {per!r}")
    try:
        value = decimal_of(entry.get("value"), where)
    except CostError as error:
        raise MeasuredError(str(error)) from None
    if value and not MIN_MAGNITUDE <= abs(value) < MAX_MAGNITUDE:
        raise MeasuredError(
            f"{where}: {str(value)[:40]} is too large or too small to price exactly"
            f" (a figure is 0 or its magnitude is from {MIN_MAGNITUDE} to below {MAX_MAGNITUDE})"
        )
    return Figure(name, value, str(per), str(entry.get("unit", "")), source, str(entry.get("note", "")))
