"""Every tenant a catalog accepts makes ledger keys that every store's adapter can write: the
catalog's limit (``MAX_TENANT_BYTES``) checked against each adapter's own key encoding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.catalog import MAX_TENANT_BYTES, key_name_problem
from meterline.records import key_part
from tests.contract.store_contract import LONGEST_CHARGES_SK, LONGEST_TENANTS

pytest.importorskip("azure.data.tables", reason="azure-data-tables (the azure extra) is not installed")
pytest.importorskip("google.cloud.firestore", reason="google-cloud-firestore (gcp extra) is not installed")

from meterline.adapters.firestore import document_id
from meterline.adapters.tables import escape_key

DYNAMODB_PARTITION_KEY_BYTES = 2048
AZURE_KEY_CHARACTERS = 512
"""1 KiB of UTF-16; Azurite refuses a 513th character."""
FIRESTORE_DOCUMENT_ID_BYTES = 1500

SORT_KEYS = ["2026-11", LONGEST_CHARGES_SK]
"""close's invoice key and rate's longest charges key, beside the tenant's partition key."""

TENANTS = st.text(st.sampled_from("%/#\\?|") | st.characters(), min_size=1, max_size=MAX_TENANT_BYTES + 8)


def assert_every_store_takes_its_keys(tenant: str) -> None:
    pk = key_part(tenant)
    assert len(pk.encode("utf-8")) <= DYNAMODB_PARTITION_KEY_BYTES
    assert len(escape_key(pk)) <= AZURE_KEY_CHARACTERS
    for sk in SORT_KEYS:
        assert len(escape_key(sk)) <= AZURE_KEY_CHARACTERS
        assert len(document_id(pk, sk).encode("utf-8")) <= FIRESTORE_DOCUMENT_ID_BYTES


@given(TENANTS)
@settings(max_examples=500, deadline=timedelta(seconds=5))
def test_every_tenant_the_catalog_accepts_makes_keys_every_store_takes(tenant: str) -> None:
    if key_name_problem(tenant) is None:
        assert_every_store_takes_its_keys(tenant)


@pytest.mark.parametrize("tenant", LONGEST_TENANTS)
def test_the_longest_tenants_make_keys_every_store_takes(tenant: str) -> None:
    assert key_name_problem(tenant) is None
    assert_every_store_takes_its_keys(tenant)


def test_the_limit_is_the_strictest_stores_a_byte_more_would_not_fit_azure() -> None:
    # the character key escaping lengthens most: five key characters for one byte of tenant
    assert len(escape_key(key_part("%" * MAX_TENANT_BYTES))) <= AZURE_KEY_CHARACTERS
    assert len(escape_key(key_part("%" * (MAX_TENANT_BYTES + 1)))) > AZURE_KEY_CHARACTERS
