"""An Azure billing cell composed from its components; returns the stack's outputs."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.resources as resources

from infra.components.azure.events import Events, EventsArgs
from infra.components.azure.functions import Functions, FunctionsArgs, hub_trigger
from infra.components.azure.ledgers import TABLE_PREFIX, Ledgers, LedgersArgs
from infra.components.azure.operations import Alerts, AlertsArgs, Insights, InsightsArgs
from infra.config import REPO_ROOT, StackConfig
from infra.outputs import cost_inputs
from infra.settings import rendered
from meterline.adapters.azure_functions import AzureSettings
from meterline.topology import FUNCTIONS, TABLES, TOPICS

BUILD_DIR = REPO_ROOT / "build" / "azure"


def azure_cell(config: StackConfig) -> dict[str, Any]:
    assert config.event_hubs is not None
    tags = config.resource_tags()
    client = authorization.get_client_config_output()
    # Kept: deleting a resource group deletes everything in it, retained ledgers and keys included
    group = resources.ResourceGroup(
        "cell",
        resource_group_name=config.unique(f"{config.cell}-billing"),
        location=config.region,
        tags=tags,
        opts=pulumi.ResourceOptions(protect=True, retain_on_delete=True),
    )
    consumer_groups = [(t.hub, t.consumer_group) for f in FUNCTIONS if (t := hub_trigger(f)) is not None]
    events = Events(
        "events",
        EventsArgs(
            config.cell,
            config.unique(f"{config.cell}-events"),
            config.region,
            group.name,
            config.event_hubs,
            TOPICS,
            consumer_groups,
            tags,
        ),
    )
    ledgers = Ledgers(
        "ledgers",
        LedgersArgs(
            config.cell,
            config.region,
            group.name,
            client.tenant_id,
            client.subscription_id,
            TABLES,
            tags,
            config.name_suffix,
        ),
    )
    insights = Insights(
        "insights", InsightsArgs(config.cell, config.region, group.name, config.log_retention_days, tags)
    )
    functions = Functions(
        "functions",
        FunctionsArgs(
            cell=config.cell,
            location=config.region,
            resource_group=group.name,
            subscription_id=client.subscription_id,
            deployer_object_id=client.object_id,
            name_suffix=config.name_suffix,
            functions=FUNCTIONS,
            catalog=config.catalog,
            build_dir=BUILD_DIR / config.stack,
            events=events,
            ledgers=ledgers,
            insights_id=insights.component_id,
            insights_connection=insights.connection_string,
            tags=tags,
        ),
    )
    alerts = Alerts(
        "alerts",
        AlertsArgs(
            config.cell,
            group.name,
            insights.component_id,
            [(job, f.name) for job, f in functions.functions.items()],
            events.namespace_id,
            ledgers.account_id,
            tags,
        ),
    )
    return {
        "resource_group": group.name,
        "eventhubs_namespace": events.namespace_id,
        "kafka_bootstrap_servers": events.kafka_bootstrap,
        "tables": ledgers.table_ids,
        "table_endpoint": ledgers.table_endpoint,
        "functions": {job: {"name": f.name, "id": f.app_id} for job, f in functions.functions.items()},
        "cost_inputs": cost_inputs(config, TOPICS, [events, ledgers, insights, functions, alerts]),
        # what a client of the cell's topics and ledgers sets, as the functions do (`meterline smoke`)
        "cell_settings": rendered(
            AzureSettings,
            table_prefix=TABLE_PREFIX,
            tables_endpoint=ledgers.table_endpoint,
            kafka_bootstrap=events.kafka_bootstrap,
        ),
        "retention_capped_hours": pulumi.Output.from_input(
            {
                t: h
                for t, h in events.retention_hours.items()
                if h < next((x.retention_hours for x in TOPICS if x.name == t), h)
            }
        ),
    }
