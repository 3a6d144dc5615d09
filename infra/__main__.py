"""The meterline cell program: one billing cell per stack. Composition only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Pulumi runs this file by path; make `infra` and `meterline` importable from the checkout.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "shared")]

import pulumi  # noqa: E402

from infra.components.aws.functions import TOPIC_ADMIN, Functions, FunctionsArgs  # noqa: E402
from infra.components.aws.kafka import Kafka, KafkaArgs  # noqa: E402
from infra.components.aws.ledgers import Ledgers, LedgersArgs  # noqa: E402
from infra.components.aws.network import Network, NetworkArgs  # noqa: E402
from infra.components.aws.operations import Operations, OperationsArgs  # noqa: E402
from infra.config import ConfigError, StackConfig, load_from_pulumi  # noqa: E402
from infra.outputs import cost_inputs  # noqa: E402
from infra.packaging import BUILD_DIR, build_packages, offline_build  # noqa: E402
from infra.settings import rendered  # noqa: E402
from meterline.adapters.aws_lambda import AwsSettings  # noqa: E402
from meterline.topology import FUNCTIONS, TABLES, TOPICS  # noqa: E402


def aws_cell(config: StackConfig) -> dict[str, Any]:
    exports: dict[str, Any] = {}
    tags = config.resource_tags()
    packages = build_packages(
        [function.job for function in FUNCTIONS] + [TOPIC_ADMIN.job],
        config.catalog,
        BUILD_DIR / config.stack,
        offline=offline_build(),
    )
    network = Network("network", NetworkArgs(config.cell, config.region, config.network, tags))
    kafka = Kafka(
        "kafka", KafkaArgs(config.cell, network.subnet_ids, network.kafka_security_group_id, TOPICS, tags)
    )
    ledgers = Ledgers(
        "ledgers", LedgersArgs(config.cell, config.region, TABLES, tags, f"{config.unique(config.cell)}-")
    )
    functions = Functions(
        "functions",
        FunctionsArgs(
            cell=config.cell,
            region=config.region,
            functions=FUNCTIONS,
            topics=TOPICS,
            packages=packages,
            kafka=kafka,
            ledgers=ledgers,
            subnet_ids=network.subnet_ids,
            security_group_id=network.functions_security_group_id,
            kafka_pollers=config.kafka_pollers,
            log_retention_days=config.log_retention_days,
            tags=tags,
        ),
    )
    operations = Operations(
        "operations",
        OperationsArgs(
            config.cell, config.region, config.load.events_per_second, kafka, ledgers, functions, tags
        ),
    )

    exports["vpc_id"] = network.vpc_id
    exports["kafka_cluster_arn"] = kafka.cluster_arn
    exports["kafka_bootstrap_servers"] = kafka.bootstrap_servers
    exports["tables"] = {
        name: {"name": ledger.name, "arn": ledger.arn} for name, ledger in ledgers.tables.items()
    }
    exports["functions"] = {job: {"name": f.name, "arn": f.arn} for job, f in functions.functions.items()}
    exports["failure_queue"] = functions.failure_queue_name
    exports["failure_bucket"] = functions.failure_bucket_name
    exports["alarm_topic_arn"] = operations.alarm_topic_arn
    exports["dashboard"] = operations.dashboard_name
    exports["cost_inputs"] = cost_inputs(config, TOPICS, [network, kafka, ledgers, functions, operations])
    # what a client of the cell's topics and ledgers sets, as the functions do (`meterline smoke`)
    exports["cell_settings"] = rendered(
        AwsSettings,
        platform=True,
        table_prefix=ledgers.table_prefix,
        kafka_bootstrap=kafka.bootstrap_servers,
        region=config.region,
    )
    return exports


def cloud_cell(config: StackConfig) -> dict[str, Any]:
    if config.cloud == "gcp":
        from infra.components.gcp.cell import gcp_cell

        return gcp_cell(config)
    if config.cloud == "azure":
        from infra.components.azure.cell import azure_cell

        return azure_cell(config)
    return aws_cell(config)


try:
    stack_config = load_from_pulumi()
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None
for output_name, value in cloud_cell(stack_config).items():
    pulumi.export(output_name, value)
