"""The invoice and charges ledgers: where issued invoices, amendments, their number sequence,
catalog snapshots, drafts and spend alerts live, and how they are encoded. The jobs (close, rate)
go through this module; none builds these items by hand.

Numbered documents (invoices and amendments) share ONE partition with the counter that numbers
them: ``numbered|issuer`` for the deployment (``billing.numbering.per: issuer``) or
``numbered|customer|<tenant>`` (``per: customer``). A document is issued in one transaction with
the counter's advance: a conditional create of the document and a conditional put of the counter
(it still holds the number read). So two closers, a rerun or a crash between any two calls leave
one document per key and no gap: a number is taken only with the document that bears it. Every
store commits such a transaction, Azure Tables included (one partition).

    invoice|<tenant>|<period>|<subscription>              an issued invoice (immutable)
    amendment|<tenant>|<period>|<subscription>|<revision>  an amendment of that invoice
    counter                                               ``next``: how many numbers are taken

Catalog snapshots sit under ``catalog|<sha256>``, chunked under the item size limit:
content-addressed, so writing one twice writes the same items. The charges ledger keeps, per
tenant, each open period's drafts (spend to date), their sum, and one record per spend alert.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

from meterline.amendments import Amendment, Issued, add_drawdowns, invoice_id
from meterline.catalog import Catalog, Numbering, NumberingScope, parse_catalog_bytes
from meterline.invoice import Invoice
from meterline.money import Money
from meterline.periods import Period
from meterline.ports import ConditionFailedError, Item, PutIf, PutNew, RetriableStoreError, Store, StoreError
from meterline.records import key_part
from meterline.topology import CHARGES_TABLE, INVOICES_TABLE

INVOICES = INVOICES_TABLE.name
CHARGES = CHARGES_TABLE.name
MAX_CHUNK_BYTES = 350_000
"""Below DynamoDB's 400 KB item limit, with room for keys and attributes."""
NUMBER_DIGITS = 6
ISSUE_ATTEMPTS = 64
SCOPE_KEY = ("numbering", "scope")
"""How many times issuing retries when other documents take the next number first."""


def invoice_sk(tenant: str, period: Period | str, subscription: str) -> str:
    return f"invoice|{key_part(tenant)}|{period}|{key_part(subscription)}"


def amendment_prefix(tenant: str, period: Period | str, subscription: str) -> str:
    return f"amendment|{key_part(tenant)}|{period}|{key_part(subscription)}|"


def exact(quantities: Iterable[Fraction]) -> bytes:
    """Lines' exact quantities (their JSON text rounds a non-terminating one for display)."""
    return orjson.dumps([f"{q.numerator}/{q.denominator}" for q in quantities])


def quantities_of(item: Item) -> list[Fraction]:
    return [Fraction(text) for text in orjson.loads(item["exact"])]  # type: ignore[arg-type]


def body_of(item: Item) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(item["body"])  # type: ignore[arg-type]
    return body


class InvoiceLedger:
    def __init__(self, store: Store, numbering: Numbering) -> None:
        self.store = store
        self.numbering = numbering

    def partition(self, tenant: str) -> str:
        if self.numbering.per is NumberingScope.CUSTOMER:
            return f"numbered|customer|{key_part(tenant)}"
        return "numbered|issuer"

    def number(self, tenant: str, sequence: int) -> str:
        scope = f"{tenant}-" if self.numbering.per is NumberingScope.CUSTOMER else ""
        return f"{self.numbering.prefix}{scope}{sequence:0{NUMBER_DIGITS}d}"

    def hold_scope(self) -> None:
        """Numbers keep the scope of the deployment's first close for good (``numbering|scope``):
        documents, and the credit they drew, are found in their sequence's partition, so under a
        catalog that changed ``billing.numbering.per`` a close would find none of them (grants
        would pay again, amendments fail half way, numbers restart). Such a close is refused before
        it issues anything."""
        pk, sk = SCOPE_KEY
        held = self.store.put_new(INVOICES, {"pk": pk, "sk": sk, "per": self.numbering.per.value})
        if held is not None and (per := str(held["per"])) != self.numbering.per.value:
            raise StoreError(
                f"the invoice ledger holds numbering per {per}; the catalog says per"
                f" {self.numbering.per.value}: a deployment keeps its numbering scope"
            )

    # issuing -----------------------------------------------------------------------------------

    def issue_invoice(self, invoice: Invoice) -> Item:
        """Issue the invoice with the next number, or return the one already issued for its key."""
        sk = invoice_sk(invoice.tenant, invoice.period, invoice.subscription)
        attributes: Item = {
            "period": str(invoice.period),
            "tenant": invoice.tenant,
            "exact": exact(line.quantity for line in invoice.lines),
        }
        return self._issue(invoice.tenant, sk, invoice.to_json(), attributes)

    def issue_amendment(self, amendment: Amendment) -> Item:
        """Issue the amendment with the next number, or return the one already issued as that revision."""
        prefix = amendment_prefix(amendment.tenant, amendment.adjusts_period, amendment.subscription)
        attributes: Item = {
            "period": str(amendment.adjusts_period),
            "tenant": amendment.tenant,
            "exact": exact(line.quantity_delta for line in amendment.lines),
        }
        return self._issue(
            amendment.tenant, f"{prefix}{amendment.revision:04d}", amendment.to_json(), attributes
        )

    def _issue(self, tenant: str, sk: str, body: dict[str, Any], attributes: Item) -> Item:
        pk = self.partition(tenant)
        for _ in range(ISSUE_ATTEMPTS):
            stored = self.store.get(INVOICES, pk, sk)
            if stored is not None:
                return stored
            counter = self.store.get(INVOICES, pk, "counter")
            taken = int(counter["next"]) if counter is not None else 0
            sequence = taken + 1
            item: Item = {
                "pk": pk,
                "sk": sk,
                **attributes,
                "sequence": sequence,
                "body": orjson.dumps({**body, "number": self.number(tenant, sequence)}),
                "published": False,
            }
            advance: Item = {"pk": pk, "sk": "counter", "next": sequence}
            try:
                self.store.transact([PutNew(INVOICES, item), PutIf(INVOICES, advance, "next", taken or None)])
            except ConditionFailedError:
                continue  # issued by a twin, or another document took the number: read again
            return item
        raise RetriableStoreError(f"{sk}: the number sequence kept moving during {ISSUE_ATTEMPTS} attempts")

    def mark_published(self, item: Item) -> None:
        self.store.put(INVOICES, {**item, "published": True})

    # reading -----------------------------------------------------------------------------------

    def invoices_of(self, tenant: str, period: Period | None = None) -> list[Item]:
        """The tenant's issued invoices (of ``period`` only, when given)."""
        prefix = f"invoice|{key_part(tenant)}|" + (f"{period}|" if period is not None else "")
        return self.store.query(INVOICES, self.partition(tenant), prefix)

    def amendments_of(self, tenant: str) -> list[Item]:
        return self.store.query(INVOICES, self.partition(tenant), f"amendment|{key_part(tenant)}|")

    def issued(
        self, tenant: str, period: Period, subscription: str
    ) -> tuple[Item | None, list[Item], Issued]:
        """The invoice issued for (tenant, period, subscription), its amendments, and all of them summed."""
        pk = self.partition(tenant)
        invoice = self.store.get(INVOICES, pk, invoice_sk(tenant, period, subscription))
        issued = Issued()
        amendments: list[Item] = []
        if invoice is not None:
            issued.add_invoice(body_of(invoice), quantities_of(invoice))
            amendments = self.store.query(INVOICES, pk, amendment_prefix(tenant, period, subscription))
            for item in amendments:
                issued.add_amendment(body_of(item), quantities_of(item))
        return invoice, amendments, issued

    def drawn(self, tenant: str, before: Period | None = None) -> dict[str, Money]:
        """What the tenant's invoices (of periods before ``before``) and all its amendments drew,
        by grant."""
        drawn: dict[str, Money] = {}
        items = [
            item
            for item in self.invoices_of(tenant)
            if before is None or Period.parse(str(item["period"])) < before
        ]
        for item in [*items, *self.amendments_of(tenant)]:
            add_drawdowns(drawn, body_of(item))
        return drawn

    def counter(self, tenant: str) -> int:
        item = self.store.get(INVOICES, self.partition(tenant), "counter")
        return int(item["next"]) if item is not None else 0

    # catalog snapshots -------------------------------------------------------------------------

    def save_catalog(self, catalog: Catalog) -> None:
        """Store the catalog's text under its digest (once per digest: a later call finds it)."""
        pk = f"catalog|{catalog.digest}"
        data = catalog.text.encode("utf-8")
        if hashlib.sha256(data).hexdigest() != catalog.digest:
            raise StoreError(f"catalog {catalog.digest[:12]}: its text is not what the digest hashes")
        chunks = [data[at : at + MAX_CHUNK_BYTES] for at in range(0, len(data), MAX_CHUNK_BYTES)] or [b""]
        if len(self.store.query(INVOICES, pk, "chunk|")) == len(chunks):
            return
        for index, chunk in enumerate(chunks):
            self.store.put(
                INVOICES, {"pk": pk, "sk": f"chunk|{index:04d}", "text": chunk, "chunks": len(chunks)}
            )

    def load_catalog(self, digest: str) -> Catalog:
        items = self.store.query(INVOICES, f"catalog|{digest}", "chunk|")
        data = b"".join(bytes(item["text"]) for item in items)  # type: ignore[arg-type]
        if not items or len(items) != int(items[0]["chunks"]) or hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"catalog {digest}: no complete snapshot in the invoice ledger")
        return parse_catalog_bytes(data, f"<catalog {digest[:12]}>")

    # everything (reconciliation, the demo, tests) -----------------------------------------------

    def scan(self, kind: str) -> Iterator[Item]:
        """Every stored ``invoice`` or ``amendment``."""
        prefix = f"{kind}|"
        return (item for item in self.store.scan(INVOICES) if str(item["sk"]).startswith(prefix))


def published_message(item: Item) -> dict[str, Any]:
    """What is published for an issued document: an invoice with its id and period, an amendment as is."""
    body = body_of(item)
    if str(item["sk"]).startswith("invoice|"):
        period = str(item["period"])
        return {
            "invoice_id": invoice_id(body["tenant"], period, body["subscription"]),
            "period": period,
            **body,
        }
    return body


def invoices_by_period(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every issued invoice's body by period, by tenant then subscription start as `meterline rate`
    lists them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in InvoiceLedger(store, Numbering()).scan("invoice"):
        found.setdefault(str(item["period"]), []).append(body_of(item))
    for invoices in found.values():
        invoices.sort(key=lambda invoice: (str(invoice["tenant"]), _starts(str(invoice["subscription"]))))
    return found


def all_amendments(store: Store) -> list[dict[str, Any]]:
    """Every amendment's body, by number within each sequence."""
    items = sorted(
        InvoiceLedger(store, Numbering()).scan("amendment"), key=lambda i: (str(i["pk"]), int(i["sequence"]))
    )
    return [body_of(item) for item in items]


def _starts(subscription: str) -> str:
    """A subscription key's start date (``plan@YYYY-MM-DD``), which orders a tenant's subscriptions."""
    return subscription.rsplit("@", 1)[-1]


# the charges ledger: drafts and spend alerts of the open periods ------------------------------


def running_item(tenant: str, period: Period, invoices: list[Invoice], partials: int) -> Item:
    """A tenant's drafts of an open period (one per subscription: the invoice as it stands, spend to
    date), zlib-packed, with their sum: ONE item re-written as usage arrives (under DynamoDB's 1 KB
    write unit for most tenants)."""
    drafts = [{**invoice.to_json(), "state": "draft"} for invoice in invoices]
    return {
        "pk": key_part(tenant),
        "sk": f"{period}|running",
        "currency": invoices[0].currency,
        "subtotal": str(sum((invoice.subtotal for invoice in _priced_alike(invoices)), zero_of(invoices))),
        "spend": str(spend_of(invoices)),
        "open_partials": partials,
        "drafts": zlib.compress(orjson.dumps(drafts), 6),
    }


def spend_of(invoices: list[Invoice]) -> Money:
    """Spend to date, what alerts watch: subtotal less discount over the tenant's drafts."""
    return sum(
        (invoice.subtotal - invoice.discount for invoice in _priced_alike(invoices)), zero_of(invoices)
    )


def zero_of(invoices: list[Invoice]) -> Money:
    return invoices[0].total.zero()


def _priced_alike(invoices: list[Invoice]) -> list[Invoice]:
    """The drafts in the first one's currency, which the running item states: a tenant whose plan
    changes currency mid-month (allowed without credits) has drafts that do not add up."""
    currency = invoices[0].currency
    return [invoice for invoice in invoices if invoice.currency == currency]


def alert_item(tenant: str, period: Period, threshold: Decimal, spend: Money) -> Item:
    return {
        "pk": key_part(tenant),
        "sk": f"{period}|alert|{threshold}",
        "published": False,
        "spend": str(spend),
    }


def drafts_of(store: Store, tenant: str, period: Period) -> list[dict[str, Any]]:
    """The tenant's drafts of an open period, as rate last stored them."""
    item = store.get(CHARGES, key_part(tenant), f"{period}|running")
    if item is None:
        return []
    drafts: list[dict[str, Any]] = orjson.loads(zlib.decompress(bytes(item["drafts"])))  # type: ignore[arg-type]
    return drafts


# the amendment window: the first period late usage may still amend -----------------------------

WINDOW_KEY = ("window", "amend")


def set_amend_window(store: Store, first: Period, attempts: int = 8) -> None:
    """Move the window forward to ``first`` (never back: a slow closer of an earlier period
    cannot reopen periods a later close shut, even one stalled between its read and its write)."""
    for _ in range(attempts):
        item = store.get(INVOICES, *WINDOW_KEY)
        if item is not None and Period.parse(str(item["first"])) >= first:
            return
        moved: Item = {"pk": WINDOW_KEY[0], "sk": WINDOW_KEY[1], "first": str(first)}
        try:
            store.transact([PutIf(INVOICES, moved, "first", None if item is None else item["first"])])
        except ConditionFailedError:
            continue  # another close moved it meanwhile: compare with where it left it
        return
    raise ConditionFailedError(0, f"the amendment window kept moving while moving it to {first}")


def amend_window(store: Store) -> Period | None:
    """The first period late usage may amend, as the last close left it (None: nothing closed)."""
    item = store.get(INVOICES, *WINDOW_KEY)
    return Period.parse(str(item["first"])) if item is not None else None
