"""Public list prices, one CSV row per price, and the reference prices of billing vendors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from infra.cost.inputs import CostError

PRICES_CSV = Path(__file__).with_name("prices.csv")
REFERENCES_CSV = Path(__file__).with_name("references.csv")

PRICE_COLUMNS = ("cloud", "service", "sku", "region", "unit", "per", "price_usd", "basis", "source", "as_of")
REFERENCE_COLUMNS = ("vendor", "plan", "usd_per_million_events", "note", "source", "as_of")


class PriceBookError(CostError):
    pass


@dataclass(frozen=True, slots=True)
class Price:
    cloud: str
    service: str
    sku: str
    region: str
    unit: str
    per: Decimal
    """How many units `price_usd` buys (1 for hourly prices, 1,000,000 for per-million prices)."""
    price_usd: Decimal
    basis: str
    """`list` when read from the public page, `approx` when estimated (the source says how)."""
    source: str
    as_of: str

    @property
    def usd_per_unit(self) -> Decimal:
        return self.price_usd / self.per


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    vendor: str
    plan: str
    usd_per_million_events: Decimal
    note: str
    source: str
    as_of: str


class PriceBook:
    def __init__(self, prices: list[Price], origin: str) -> None:
        self.origin = origin
        self._prices: dict[tuple[str, str, str, str], Price] = {}
        for price in prices:
            key = (price.cloud, price.service, price.sku, price.region)
            if key in self._prices:
                raise PriceBookError(f"{origin}: two prices for {'/'.join(key)}")
            self._prices[key] = price

    def find(self, cloud: str, service: str, sku: str, region: str) -> Price | None:
        return self._prices.get((cloud, service, sku, region))

    def regions(self, cloud: str) -> set[str]:
        return {region for (c, _, _, region) in self._prices if c == cloud}

    def __iter__(self) -> Iterator[Price]:
        return iter(self._prices.values())


def load_price_book(path: Path = PRICES_CSV) -> PriceBook:
    rows = _read_rows(path, PRICE_COLUMNS)
    prices = [
        Price(
            cloud=row["cloud"],
            service=row["service"],
            sku=row["sku"],
            region=row["region"],
            unit=row["unit"],
            per=_decimal(row["per"], f"{path}:{line} per"),
            price_usd=_decimal(row["price_usd"], f"{path}:{line} price_usd"),
            basis=row["basis"],
            source=row["source"],
            as_of=row["as_of"],
        )
        for line, row in rows
    ]
    for (line, _), price in zip(rows, prices, strict=True):
        if price.per <= 0:
            raise PriceBookError(f"{path}:{line}: per must be positive")
        if price.basis not in ("list", "approx", "free"):
            raise PriceBookError(f"{path}:{line}: basis must be list, approx or free, not {price.basis!r}")
    return PriceBook(prices, str(path))


def load_references(path: Path = REFERENCES_CSV) -> list[ReferencePrice]:
    return [
        ReferencePrice(
            vendor=row["vendor"],
            plan=row["plan"],
            usd_per_million_events=_decimal(row["usd_per_million_events"], f"{path}:{line}"),
            note=row["note"],
            source=row["source"],
            as_of=row["as_of"],
        )
        for line, row in _read_rows(path, REFERENCE_COLUMNS)
    ]


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            missing = set(columns) - set(reader.fieldnames or ())
            if missing:
                raise PriceBookError(f"{path}: missing columns {', '.join(sorted(missing))}")
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items()}) for row in reader]
    except OSError as error:
        raise PriceBookError(f"{path}: cannot read ({error.strerror})") from None


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise PriceBookError(f"{where}: {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise PriceBookError(f"{where}: {text!r} must be finite and not negative")
    return value
