"""One Cloud Run function (2nd gen) per `meterline.topology.FUNCTIONS` entry, each with its own
service account, and the triggers that stand in for Lambda's event source mappings:

- Kafka-triggered jobs (meter): Pub/Sub push from the topic's Kafka Connect bridge;
- aggregate: no push trigger. A Firestore trigger on usage would make every event its own
  aggregate transaction; instead Cloud Scheduler calls it every minute and it drains the topic
  itself in its own consumer group, a batch per partition (`meterline.adapters.kafka_drain`).
  It runs on one instance, and a tick that finds it busy is not retried: the next minute goes on;
- other table-stream jobs (rate): Firestore `document.v1.created` events on the source
  collection (Eventarc) — one delivery per document, not a batch;
- the schedule (close): Cloud Scheduler calls the function with an OIDC token.

Builds run as the cell's own Cloud Build account (`roles/cloudbuild.builds.builder`, reading the
sources bucket): a new project's default build account no longer has the rights a build needs.
The sources bucket holds only what git rebuilds, so a destroy may empty it (`force_destroy`).

Least privilege: Firestore IAM stops at the database, so each account gets `datastore.user` (or
`viewer`) under a condition naming the cell's database; Kafka access (to publish, or to consume
and commit in a consumer group) is `managedkafka.client` conditioned on the cell's cluster. One
invoker account per cell may only invoke these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.components.aws.functions import invocations_per_month
from infra.components.gcp.kafka import Kafka
from infra.components.gcp.keys import Keys
from infra.components.gcp.ledgers import COLLECTION_PREFIX, Ledgers, collection
from infra.components.gcp.project import Project, after
from infra.components.gcp.source import ENTRY_POINT, source_archive
from infra.settings import rendered
from meterline.adapters.gcp_functions import AGGREGATE_CONSUMER_GROUP, DRAIN_SECONDS, GcpSettings
from meterline.topology import AGGREGATE, Function, TriggerKind

RUNTIME = "python313"
EVENT_DRIVEN_MAX_TIMEOUT = 540
FIRESTORE_CREATED = "google.cloud.firestore.document.v1.created"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
SCHEDULE_RETRIES = 3
BUILDER_ROLE = "roles/cloudbuild.builds.builder"
APIS = ("storage", "serviceaccount", "projects", "cloudfunctionsv2", "cloudrunv2", "cloudscheduler")
"""The pulumi-gcp modules this component's resources come from: each waits for their APIs."""


@dataclass(frozen=True, slots=True)
class KafkaDrain:
    """A job that Cloud Scheduler starts and that reads its topic itself, in its consumer group."""

    topic: str
    schedule: str
    consumer_group: str
    budget_seconds: float


KAFKA_DRAINS = {
    AGGREGATE.job: KafkaDrain("usage.events", "cron(* * * * ? *)", AGGREGATE_CONSUMER_GROUP, DRAIN_SECONDS)
}
"""The jobs that drain a topic on a schedule instead of their topology trigger, on GCP."""


@dataclass(frozen=True, slots=True)
class FunctionsArgs:
    cell: str
    region: str
    project: Project
    functions: Sequence[Function]
    catalog: Path
    build_dir: Path
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    kafka: Kafka
    ledgers: Ledgers
    keys: Keys
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DeployedFunction:
    definition: Function
    name: pulumi.Output[str]
    service: pulumi.Output[str]
    uri: pulumi.Output[str]
    service_account: pulumi.Output[str]


class Functions(pulumi.ComponentResource):
    functions: dict[str, DeployedFunction]
    invoker_email: pulumi.Output[str]

    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Functions", name, None, opts)
        self.args = args
        self.project_id = args.project.project_id
        self.child = args.project.children(self, *APIS)
        self.bucket = gcp.storage.Bucket(
            "sources",
            name=f"{self.project_id}-{args.cell}-sources",
            location=args.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            encryption={"default_kms_key_name": args.keys.key_id},
            force_destroy=True,
            labels=dict(args.labels),
            opts=after(self.child, args.keys.grants),
        )
        self.builder, self.builder_grants = self._builder()
        invoker = gcp.serviceaccount.Account(
            "invoker",
            account_id=f"{args.cell}-invoker",
            display_name=f"{args.cell}: Eventarc and Cloud Scheduler triggers",
            opts=self.child,
        )
        self.invoker_email = invoker.email
        self.receives_events = gcp.projects.IAMMember(
            "invoker-receives-events",
            project=self.project_id,
            role="roles/eventarc.eventReceiver",
            member=invoker.member,
            opts=self.child,
        )
        self.functions = {function.job: self._function(function, invoker) for function in args.functions}
        self.cost_items = self._cost_items()
        self.register_outputs({job: f.uri for job, f in self.functions.items()})

    def _builder(self) -> tuple[gcp.serviceaccount.Account, list[pulumi.Resource]]:
        """The account Cloud Build builds the functions as, and its grants: it builds, logs and
        pushes images (builds.builder) and reads this cell's sources, nothing else."""
        cell = self.args.cell
        builder = gcp.serviceaccount.Account(
            "builder",
            account_id=f"{cell}-builder",
            display_name=f"{cell}: Cloud Build for the cell's functions",
            opts=self.child,
        )
        grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                "builder-builds",
                project=self.project_id,
                role=BUILDER_ROLE,
                member=builder.member,
                opts=self.child,
            ),
            gcp.storage.BucketIAMMember(
                "builder-reads-sources",
                bucket=self.bucket.name,
                role="roles/storage.objectViewer",
                member=builder.member,
                opts=self.child,
            ),
        ]
        return builder, grants

    def _function(self, function: Function, invoker: gcp.serviceaccount.Account) -> DeployedFunction:
        args = self.args
        job = function.job
        physical = f"{args.cell}-{job}"
        account = gcp.serviceaccount.Account(
            job, account_id=physical, display_name=f"{physical}: the {job} job", opts=self.child
        )
        grants = self._grants(function, account)
        archive, digest = source_archive(job, args.catalog, args.build_dir)
        source = gcp.storage.BucketObject(
            job,
            bucket=self.bucket.name,
            name=f"{job}/{digest}.zip",
            source=pulumi.FileAsset(str(archive)),
            opts=self.child,
        )
        drain = KAFKA_DRAINS.get(job)
        scheduled = function.trigger is TriggerKind.SCHEDULE or drain is not None
        timeout = (
            function.timeout_seconds if scheduled else min(function.timeout_seconds, EVENT_DRIVEN_MAX_TIMEOUT)
        )
        if drain is not None and drain.budget_seconds >= timeout:
            raise ValueError(
                f"{job}: its drain budget {drain.budget_seconds}s must end before its {timeout}s timeout"
            )
        resource = gcp.cloudfunctionsv2.Function(
            job,
            name=physical,
            location=args.region,
            description=f"meterline {job}",
            build_config={
                "runtime": RUNTIME,
                "entry_point": ENTRY_POINT,
                "source": {"storage_source": {"bucket": self.bucket.name, "object": source.name}},
                "service_account": self.builder.name,
            },
            service_config={
                "available_memory": f"{function.memory_mb}Mi",
                "available_cpu": "1",
                "timeout_seconds": timeout,
                "max_instance_request_concurrency": 1,
                "min_instance_count": 0,
                # one drain at a time: a second run would read the partitions the first is settling
                "max_instance_count": 1 if drain else 20,
                "ingress_settings": "ALLOW_INTERNAL_ONLY",
                "all_traffic_on_latest_revision": True,
                "service_account_email": account.email,
                "environment_variables": self._environment(function),
                "direct_vpc_network_interfaces": [{"network": args.network_id, "subnetwork": args.subnet_id}],
                "direct_vpc_egress": "VPC_EGRESS_PRIVATE_RANGES_ONLY",
            },
            event_trigger=self._event_trigger(function, invoker),
            labels={**args.labels, "job": job},
            # an event trigger delivers as the invoker, which must be an event receiver first
            opts=after(self.child, [*grants, *self.builder_grants, self.receives_events]),
        )
        # The Cloud Run service behind the function, by its short name (what metrics label it with).
        service = resource.service_config.apply(
            lambda config: str((config or {}).get("service") or physical).rsplit("/", 1)[-1]
        )
        invokes = gcp.cloudrunv2.ServiceIamMember(
            f"{job}-invoker",
            name=service,
            location=args.region,
            role="roles/run.invoker",
            member=invoker.member,
            opts=self.child,
        )
        deployed = DeployedFunction(function, resource.name, service, resource.url, account.email)
        if scheduled:
            self._schedule(function, deployed, invoker, drain, invokes)
        return deployed

    def _grants(self, function: Function, account: gcp.serviceaccount.Account) -> list[pulumi.Resource]:
        args = self.args
        role = "roles/datastore.user" if function.writes else "roles/datastore.viewer"
        grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(
                f"{function.job}-ledger",
                project=self.project_id,
                role=role,
                member=account.member,
                condition={
                    "title": f"{args.cell} ledger only",
                    "expression": args.ledgers.database_path.apply(lambda path: f'resource.name == "{path}"'),
                },
                opts=self.child,
            )
        ]
        if function.publishes or function.job in KAFKA_DRAINS:
            grants.append(
                gcp.projects.IAMMember(
                    f"{function.job}-kafka",
                    project=self.project_id,
                    role="roles/managedkafka.client",
                    member=account.member,
                    condition={
                        "title": f"{args.cell} Kafka cluster only",
                        "expression": args.kafka.cluster_path.apply(
                            lambda path: f'resource.name.startsWith("{path}")'
                        ),
                    },
                    opts=self.child,
                )
            )
        return grants

    def _environment(self, function: Function) -> pulumi.Output[dict[str, str]]:
        """What the function's ``GcpSettings.from_env`` reads (tests/infra round-trip it)."""
        args = self.args
        inputs: dict[str, pulumi.Input[Any]] = {
            "table_prefix": COLLECTION_PREFIX,
            "database": args.ledgers.database_name,
            "project": self.project_id,
        }
        drain = KAFKA_DRAINS.get(function.job)
        if function.publishes or drain:
            inputs["kafka_bootstrap"] = args.kafka.bootstrap_servers
        if drain:
            inputs |= {"consumer_group": drain.consumer_group, "drain_seconds": drain.budget_seconds}
        return rendered(GcpSettings, **inputs)

    def _event_trigger(
        self, function: Function, invoker: gcp.serviceaccount.Account
    ) -> dict[str, Any] | None:
        if function.job in KAFKA_DRAINS:
            return None
        common = {
            "trigger_region": self.args.region,
            "retry_policy": "RETRY_POLICY_RETRY",
            "service_account_email": invoker.email,
        }
        if function.trigger is TriggerKind.KAFKA:
            bridge = self.args.kafka.bridges[function.source]
            return {**common, "event_type": PUBSUB_PUBLISHED, "pubsub_topic": bridge.pubsub_topic_id}
        if function.trigger is TriggerKind.TABLE_STREAM:
            return {
                **common,
                "event_type": FIRESTORE_CREATED,
                "event_filters": [
                    {"attribute": "database", "value": self.args.ledgers.database_name},
                    {
                        "attribute": "document",
                        "value": f"{collection(function.source)}/{{entry}}",
                        "operator": "match-path-pattern",
                    },
                ],
            }
        return None

    def _schedule(
        self,
        function: Function,
        deployed: DeployedFunction,
        invoker: gcp.serviceaccount.Account,
        drain: KafkaDrain | None,
        invokes: pulumi.Resource,
    ) -> None:
        # A drain's tick is not retried: the next one, a minute later, goes on from the committed
        # offsets, and a retry would only queue behind the instance still draining.
        gcp.cloudscheduler.Job(
            function.job,
            name=f"{self.args.cell}-{function.job}",
            region=self.args.region,
            schedule=unix_cron(drain.schedule if drain else function.source),
            time_zone="Etc/UTC",
            attempt_deadline=f"{function.timeout_seconds}s" if drain else "1800s",
            retry_config=(
                {"retry_count": 0}
                if drain
                else {"retry_count": SCHEDULE_RETRIES, "max_retry_duration": "3600s"}
            ),
            http_target={
                "uri": deployed.uri,
                "http_method": "POST",
                "oidc_token": {"service_account_email": invoker.email, "audience": deployed.uri},
            },
            opts=after(self.child, [invokes]),  # its calls are refused until the invoker may invoke
        )

    def _cost_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [{"kind": "storage_bucket", "name": f"{self.args.cell}-sources"}]
        for function in self.args.functions:
            drain = KAFKA_DRAINS.get(function.job)
            trigger = (
                "scheduler"
                if drain
                else {
                    TriggerKind.KAFKA: "pubsub",
                    TriggerKind.TABLE_STREAM: "firestore",
                    TriggerKind.SCHEDULE: "scheduler",
                }[function.trigger]
            )
            item: dict[str, Any] = {
                "kind": "cloud_run_function",
                "name": f"{self.args.cell}-{function.job}",
                "job": function.job,
                "memory_mb": function.memory_mb,
                "cpu": 1,
                "trigger": trigger,
                "source": drain.topic if drain else function.source,
            }
            if drain:
                item["joins"] = "usage"  # one usage read per record drained (usage_join)
            items.append(item)
            if trigger == "scheduler":
                items.append(
                    {
                        "kind": "cloud_scheduler_job",
                        "name": function.job,
                        "invocations_per_month": invocations_per_month(
                            drain.schedule if drain else function.source
                        ),
                    }
                )
        return items


def unix_cron(expression: str) -> str:
    """EventBridge `cron(m h dom mon dow [year])` → the five-field cron Cloud Scheduler reads."""
    matched = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: \S+)?\)", expression)
    if not matched:
        raise ValueError(f"not an EventBridge cron expression: {expression!r}")
    return " ".join("*" if field == "?" else field for field in matched.groups())
