"""The local AWS cell's moto server (``meterline.local.moto_app``): the store contract through it,
with every answer it shortcuts compared to moto's own serializer (``--check``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from meterline.adapters.dynamodb import DynamoStore, create_tables, physical_name
from meterline.local.motoserver import MotoServer, moto_client
from meterline.ports import Store
from meterline.topology import USAGE_TABLE
from tests.contract.store_contract import StoreContract, item


@pytest.fixture(scope="module")
def checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log", check=True)
    server.start()
    try:
        yield server.endpoint
    finally:
        server.stop()


class TestDynamoStoreThroughTheLocalServer(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, checking_server: str) -> None:
        self.endpoint = checking_server

    def make_store(self) -> Store:
        dynamodb = moto_client("dynamodb", self.endpoint, "us-east-1")
        prefix = f"t{uuid.uuid4().hex[:8]}-"
        create_tables(dynamodb, prefix)
        return DynamoStore(dynamodb, prefix)


def test_stream_records_with_binary_images_read_as_moto_answers_them(checking_server: str) -> None:
    # GIVEN a usage item with a binary attribute, written through the local server
    dynamodb = moto_client("dynamodb", checking_server, "us-east-1")
    streams = moto_client("dynamodbstreams", checking_server, "us-east-1")
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    create_tables(dynamodb, prefix)
    DynamoStore(dynamodb, prefix).put(USAGE_TABLE.name, item("t-1", "k", blob=b"\x00\xff", n=7))

    # WHEN its table's stream is read (the server checks its answer against moto's serializer)
    name = physical_name(prefix, USAGE_TABLE)
    arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    # THEN the record carries the item's image, bytes and timestamp decoded as botocore reads them
    (record,) = records
    image = record["dynamodb"]["NewImage"]
    assert image["blob"] == {"B": b"\x00\xff"}
    assert image["n"] == {"N": "7"}
    assert record["dynamodb"]["ApproximateCreationDateTime"].year >= 2024
