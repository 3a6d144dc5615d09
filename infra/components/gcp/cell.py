"""A GCP billing cell composed from its components; returns the stack's outputs."""

from __future__ import annotations

from typing import Any

from infra.components.gcp.functions import KAFKA_DRAINS, Functions, FunctionsArgs
from infra.components.gcp.kafka import Kafka, KafkaArgs
from infra.components.gcp.keys import Keys, KeysArgs
from infra.components.gcp.ledgers import COLLECTION_PREFIX, Ledgers, LedgersArgs
from infra.components.gcp.network import Network, NetworkArgs
from infra.components.gcp.operations import Operations, OperationsArgs
from infra.components.gcp.project import Project, ProjectArgs
from infra.config import REPO_ROOT, GcpNetwork, ManagedKafka, StackConfig
from infra.outputs import cost_inputs
from infra.settings import rendered
from meterline.adapters.gcp_functions import GcpSettings
from meterline.topology import FUNCTIONS, TABLES, TOPICS, TriggerKind

BUILD_DIR = REPO_ROOT / "build" / "gcp"


def labels_of(tags: dict[str, str]) -> dict[str, str]:
    """GCP labels: lowercase keys and values of letters, digits, `-` and `_`."""
    clean = lambda text: "".join(c if c.isalnum() or c in "-_" else "_" for c in text.lower())[:63]  # noqa: E731
    return {clean(key): clean(value) for key, value in tags.items()}


def gcp_cell(config: StackConfig) -> dict[str, Any]:
    assert isinstance(config.network, GcpNetwork) and config.project and config.managed_kafka
    capacity = config.managed_kafka
    labels = labels_of(config.resource_tags())
    project = Project("project", ProjectArgs(config.project))
    network = Network(
        "network", NetworkArgs(config.cell, config.region, config.network.cidr, project, labels)
    )
    keys = Keys(
        "keys", KeysArgs(config.cell, config.region, project, config.unique(f"{config.cell}-keys"), labels)
    )
    kafka = Kafka("kafka", _kafka_args(config, project, capacity, network, keys, labels))
    triggered = [
        f.source for f in FUNCTIONS if f.trigger is TriggerKind.TABLE_STREAM and f.job not in KAFKA_DRAINS
    ]
    ledgers = Ledgers(
        "ledgers",
        LedgersArgs(
            cell=config.cell,
            region=config.region,
            project=project,
            database_name=config.unique(f"{config.cell}-ledger"),
            tables=TABLES,
            key_id=keys.key_id,
            key_grants=keys.grants,
            labels=labels,
            triggered=triggered,
        ),
    )
    functions = Functions(
        "functions",
        FunctionsArgs(
            cell=config.cell,
            region=config.region,
            project=project,
            functions=FUNCTIONS,
            catalog=config.catalog,
            build_dir=BUILD_DIR / config.stack,
            network_id=network.network_id,
            subnet_id=network.subnet_id,
            kafka=kafka,
            ledgers=ledgers,
            keys=keys,
            labels=labels,
        ),
    )
    operations = Operations(
        "operations", OperationsArgs(config.cell, config.region, project, kafka, functions, keys, labels)
    )
    return {
        "network": network.network_id,
        "kafka_cluster": kafka.cluster_path,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "pubsub_bridges": {topic: bridge.pubsub_topic_id for topic, bridge in kafka.bridges.items()},
        "firestore_database": ledgers.database_path,
        "functions": {job: {"name": f.name, "uri": f.uri} for job, f in functions.functions.items()},
        "alert_topic": operations.alert_topic,
        "cost_inputs": cost_inputs(config, TOPICS, [network, keys, kafka, ledgers, functions, operations]),
        # what a client of the cell's topics and ledgers sets, as the functions do (`meterline smoke`)
        "cell_settings": rendered(
            GcpSettings,
            table_prefix=COLLECTION_PREFIX,
            database=ledgers.database_name,
            project=config.project,
            kafka_bootstrap=kafka.bootstrap_servers,
        ),
    }


def _kafka_args(
    config: StackConfig,
    project: Project,
    capacity: ManagedKafka,
    network: Network,
    keys: Keys,
    labels: dict[str, str],
) -> KafkaArgs:
    bridged = sorted({f.source for f in FUNCTIONS if f.trigger is TriggerKind.KAFKA})
    return KafkaArgs(
        config.cell, config.region, project, network.subnet_id, capacity, TOPICS, bridged, keys, labels
    )
