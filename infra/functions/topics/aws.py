"""Deploy-time Kafka topic administrator for an MSK Serverless cell.

MSK's topic APIs (and so `aws.msk.Topic`) work on provisioned clusters only, and a serverless
cluster is reachable only from inside its VPC; so the cell invokes this function on deploy
(`aws.lambda_.Invocation`) with the topics from `meterline.topology`. It creates missing topics,
raises partition counts and sets retention. It never deletes a topic nor lowers partitions:
those hold billing data, and such drift is reported instead.
"""

from __future__ import annotations

import os
from typing import Any

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

_TIMEOUT = 30.0


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    if event.get("tf", {}).get("action") == "delete":
        return {"deleted": [], "note": "topics are never deleted by the infrastructure"}
    region = os.environ["AWS_REGION"]
    admin = AdminClient(
        {
            "bootstrap.servers": event["bootstrap"],
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": lambda _config: MSKAuthTokenProvider.generate_auth_token(region),
        }
    )
    wanted = {topic["name"]: topic for topic in event["topics"]}
    existing = admin.list_topics(timeout=_TIMEOUT).topics
    report: dict[str, Any] = {"created": [], "repartitioned": [], "drift": []}

    missing = [
        NewTopic(
            name,
            num_partitions=topic["partitions"],
            config={"cleanup.policy": "delete", "retention.ms": str(topic["retention_ms"])},
        )
        for name, topic in wanted.items()
        if name not in existing
    ]
    for name, future in admin.create_topics(missing, request_timeout=_TIMEOUT).items() if missing else ():
        future.result()
        report["created"].append(name)

    grow = []
    for name, topic in wanted.items():
        if name not in existing:
            continue
        current = len(existing[name].partitions)
        if current < topic["partitions"]:
            grow.append(NewPartitions(name, topic["partitions"]))
        elif current > topic["partitions"]:
            report["drift"].append(f"{name}: {current} partitions, topology says {topic['partitions']}")
    for name, future in admin.create_partitions(grow, request_timeout=_TIMEOUT).items() if grow else ():
        future.result()
        report["repartitioned"].append(name)

    retention = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(
                    "retention.ms", str(topic["retention_ms"]), incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        for name, topic in wanted.items()
    ]
    for future in admin.incremental_alter_configs(retention).values():
        future.result()
    return report
