"""An adversarial review of the close (issue #12): a customer who would pay less, and a crash at the
worst moment. Hand-computed golden cases on the in-memory cell."""

from __future__ import annotations

from meterline.adapters.memory import MemoryPublisher
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog, parse_catalog
from meterline.pipeline.cell import Cell
from meterline.pipeline.invoices import invoices_by_period
from meterline.pipeline.processing import AggregateProcessor, MeterProcessor

from .test_amendments import CATALOG, CATALOG_TEXT, DEC_1, NOV_1, Events, amendments_of

SWITCHER = """  - tenant: org-switch
    subscriptions:
      - {plan: payg, from: "2026-10-01", to: "2026-10-16"}
      - {plan: promo, from: "2026-10-16", to: null}
billing:"""
WITH_SWITCHER = CATALOG_TEXT.replace("billing:", SWITCHER)


def redeploy(cell: Cell, catalog: Catalog) -> None:
    """Every job of the cell on another catalog, over the same ledgers (a catalog deploy)."""
    cell.catalog = catalog
    cell.jobs = Jobs(catalog, cell.store, cell.publisher)
    cell.meter, cell.aggregator = cell.jobs.meter, cell.jobs.aggregator
    cell.charges, cell.closer = cell.jobs.charges, cell.jobs.closer
    cell.metering, cell.aggregating = MeterProcessor(cell.meter), AggregateProcessor(cell.aggregator)


def invoice_of(cell: Cell, tenant: str, period: str) -> list[dict[str, str]]:
    return [i for i in invoices_by_period(cell.store).get(period, []) if i["tenant"] == tenant]


def test_late_usage_of_a_customer_removed_from_the_catalog_amends_its_split_month() -> None:
    # GIVEN org-switch on payg 1-15 October and on promo from 16 October: 10 GB on the 5th, 4 GB on
    # the 20th; October issued (payg 10.00, promo 4.00)
    catalog = parse_catalog(WITH_SWITCHER)
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-switch", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-switch", 4, "2026-10-20T00:00:00Z"),
    )
    cell.close(NOV_1)
    # WHEN the customer is removed from the catalog, and 3 GB of 7 October and 2 GB of 25 October arrive
    redeploy(cell, CATALOG)
    events.deliver(
        cell,
        events.ingress("org-switch", 3, "2026-10-07T00:00:00Z"),
        events.ingress("org-switch", 2, "2026-10-25T00:00:00Z"),
    )
    cell.close(DEC_1)
    # THEN October is amended under the catalog that issued it: payg +3 GB = +3.00, promo +2 GB = +2.00
    found = sorted((a["subscription"], a["total_delta"]) for a in amendments_of(cell, "org-switch"))
    assert found == [("payg@2026-10-01", "3.00"), ("promo@2026-10-16", "2.00")]
    # AND November has no invoice for it: it is no customer any more
    assert invoice_of(cell, "org-switch", "2026-11") == []
