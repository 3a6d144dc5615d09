"""Stack configuration fails once, on one line naming the stack and the key."""

from __future__ import annotations

import json

import pytest

from infra.config import ConfigError, load_stack_config, read_stack_file


def test_the_us_east_stack_loads_into_a_typed_config() -> None:
    config = load_stack_config("aws-us-east-1", read_stack_file("aws-us-east-1"))
    assert (config.region, config.cell, str(config.load.events_per_second)) == ("us-east-1", "ml-use1", "200")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("meterline:budgetUsdMonth", None, "stack aws-us-east-1: meterline:budgetUsdMonth is missing"),
        ("meterline:budgetUsdMonth", "lots", "meterline:budgetUsdMonth must be a decimal number"),
        ("aws:region", "eu-west-1", "aws:region is eu-west-1 but the stack name says us-east-1"),
        ("meterline:catalog", "nowhere.yaml", "meterline:catalog names nowhere.yaml, which is not a file"),
        ("meterline:tags", json.dumps({"owner": "x"}), "meterline:tags.cost-center is missing"),
        (
            "meterline:logRetentionDays",
            "31",
            "meterline:logRetentionDays must be a CloudWatch retention period",
        ),
        (
            "meterline:network",
            json.dumps({"availabilityZones": ["us-east-1a"]}),
            "needs at least 2 distinct zones",
        ),
        (
            "meterline:network",
            json.dumps({"vpcId": "vpc-1", "subnetIds": ["subnet-1"]}),
            "needs at least 2 subnets",
        ),
        (
            "meterline:expectedLoad",
            json.dumps({"eventsPerSecond": "1", "tenants": 3}),
            "meterline:expectedLoad.avgEventBytes is missing",
        ),
        ("meterline:colour", "blue", "unknown key meterline:colour"),
        ("meterline:nameSuffix", None, "meterline:nameSuffix is missing"),
        ("meterline:nameSuffix", "Prod_1", "meterline:nameSuffix must be 4 to 6 lowercase letters or digits"),
    ],
)
def test_a_bad_key_is_named_with_its_stack(key: str, value: str | None, message: str) -> None:
    raw = read_stack_file("aws-us-east-1")
    if value is None:
        raw.pop(key)
    else:
        raw[key] = value
    with pytest.raises(ConfigError, match=r"^stack aws-us-east-1: ") as error:
        load_stack_config("aws-us-east-1", raw)
    assert message in str(error.value) and "\n" not in str(error.value)
