"""The statement exchange contract on S3: real HTTP calls to a moto server in its own process,
conditional writes (``If-None-Match: *``) included; then what is S3's own: errors named by key."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from meterline.adapters.s3 import S3Exchange
from meterline.exchange import Exchange, ExchangeError
from meterline.local.motoserver import MotoServer
from tests.contract.exchange_contract import ExchangeContract

SESSION = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
_buckets = itertools.count()


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MotoServer(Path(tmp_path_factory.mktemp("moto")) / "moto.log")
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


def new_exchange(endpoint: str) -> S3Exchange:
    client = SESSION.client("s3", endpoint_url=endpoint)
    bucket = f"home-statements-{next(_buckets)}"
    client.create_bucket(Bucket=bucket)
    return S3Exchange(client, bucket)


class TestS3Exchange(ExchangeContract):
    @pytest.fixture(autouse=True)
    def _server(self, moto_endpoint: str) -> None:
        self.endpoint = moto_endpoint

    def make_exchange(self) -> Exchange:
        return new_exchange(self.endpoint)


def test_a_bucket_that_does_not_exist_is_a_one_line_exchange_error(moto_endpoint: str) -> None:
    exchange = S3Exchange(SESSION.client("s3", endpoint_url=moto_endpoint), "no-such-bucket")
    with pytest.raises(ExchangeError, match=r"^statements/x.json: S3 put failed: .*NoSuchBucket") as raised:
        exchange.put("statements/x.json", b"{}")
    assert "\n" not in str(raised.value)
