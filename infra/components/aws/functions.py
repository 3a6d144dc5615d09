"""One Lambda per `meterline.topology.FUNCTIONS` entry, with its role, log group and trigger, plus
the deploy-time topic administrator.

Failures that exhaust retries go to an on-failure destination: an S3 bucket for the Kafka
trigger (S3 is the only destination that keeps the failed records themselves, past the topic's
retention) and an SQS queue for the table streams and the schedule (stream failures carry
shard and sequence numbers; the records stay readable in the stream for 24 hours).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.iam import FunctionAccess, assume_role_policy, function_policy
from infra.components.aws.kafka import Kafka, topic_spec
from infra.components.aws.ledgers import Ledgers
from infra.components.aws.storage import encrypted_queue, private_and_encrypted, tls_only
from infra.components.home_link import HomeEndpoint
from infra.config import KafkaPollers
from infra.packaging import ARCHITECTURE, HANDLER, RUNTIME, LambdaPackages
from infra.settings import rendered
from meterline.adapters.aws_lambda import AwsSettings
from meterline.pipeline.ledger import PARTIAL
from meterline.topology import PUBLISH, Function, Topic, TriggerKind

TOPIC_ADMIN = Function("topics", TriggerKind.SCHEDULE, "deploy", 1, 0, 256, 300, (), (), ())
STREAM_RETRIES = 10
STREAM_MAX_RECORD_AGE_SECONDS = 6 * 3600
UNTIL_THE_STREAM_DROPS_IT = -1
"""aggregate retries a failing batch for as long as the stream keeps it (24 h): a batch skipped
after bounded retries would be usage missing from the invoices, where one retried is only late
(and its IteratorAge alarm fires). rate may skip: the next partial re-rates the tenant."""
SCHEDULE_RETRIES = 3
STREAM_FILTERS = {
    # usage items are only ever inserted: a MODIFY or REMOVE (someone editing the table) is not usage
    "aggregate": {"eventName": ["INSERT"]},
    # the aggregates stream also carries markers, fences, rollups (large) and heads: rate wants partials
    "rate": {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": PARTIAL}]}}}},
}
MAPPING_METRICS = ["EventCount"]
"""Each trigger reports what it polled, invoked, failed (partial batch responses included), dropped and
sent to its on-failure destination, per mapping (AWS/Lambda, EventSourceMappingUUID): the alarms'
source for failures the function's own Errors metric never sees."""


@dataclass(frozen=True, slots=True)
class FunctionsArgs:
    cell: str
    region: str
    functions: Sequence[Function]
    topics: Sequence[Topic]
    packages: LambdaPackages
    kafka: Kafka
    ledgers: Ledgers
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kafka_pollers: KafkaPollers
    log_retention_days: int
    tags: Mapping[str, str]
    home: HomeEndpoint | None = None
    """Where `publish` writes its statements; None before the home exists (its schedule paused)."""
    extra_settings: Mapping[str, Mapping[str, pulumi.Input[Any]]] = field(default_factory=dict)
    """job → fields of its settings schema beyond the cell's own (`home_link.job_settings`)."""


@dataclass(frozen=True, slots=True)
class DeployedFunction:
    definition: Function
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    log_group: str
    role_arn: pulumi.Output[str]


class Functions(pulumi.ComponentResource):
    functions: dict[str, DeployedFunction]
    mappings: dict[str, pulumi.Output[str]]
    """job → the UUID of its event source mapping (the jobs with a Kafka or stream trigger)."""
    failure_queue_name: pulumi.Output[str]
    failure_bucket_name: pulumi.Output[str]
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Functions", name, None, opts)
        self.args = args
        self.child = pulumi.ResourceOptions(parent=self)
        self.account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = args.ledgers.key_arn
        self.layer = aws.lambda_.LayerVersion(
            "dependencies",
            layer_name=f"{args.cell}-dependencies",
            code=pulumi.FileArchive(str(args.packages.layer)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="orjson, PyYAML, iso4217, Powertools, confluent-kafka, MSK IAM signer",
            opts=self.child,
        )
        self.failure_queue = encrypted_queue(self, "failures", f"{args.cell}-failures", key, args.tags)
        aws.sqs.QueuePolicy(
            "failures",
            queue_url=self.failure_queue.url,
            policy=pulumi.Output.json_dumps(tls_only("sqs:*", [self.failure_queue.arn])),
            opts=self.child,
        )
        self.failure_bucket = self._failure_bucket(key)
        self.functions = {}
        self.mappings = {}
        for function in args.functions:
            self.functions[function.job] = self._function(function)
        admin = self._function(TOPIC_ADMIN)
        self.topics_ready = aws.lambda_.Invocation(
            "topics",
            function_name=admin.name,
            input=pulumi.Output.json_dumps(
                {
                    "bootstrap": args.kafka.bootstrap_servers,
                    "topics": [topic_spec(topic) for topic in args.topics],
                }
            ),
            opts=self.child,
        )
        for function in args.functions:
            self._trigger(function, self.functions[function.job])
        self.failure_queue_name = self.failure_queue.name
        self.failure_bucket_name = self.failure_bucket.bucket
        self.cost_items = self._cost_items([*args.functions, TOPIC_ADMIN])
        self.register_outputs({job: deployed.arn for job, deployed in self.functions.items()})

    def _failure_bucket(self, key: pulumi.Output[str]) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            "kafka-failures",
            bucket_prefix=f"{self.args.cell}-kafka-failures-",
            force_destroy=False,
            tags=dict(self.args.tags),
            opts=self.child,
        )
        private_and_encrypted("kafka-failures", bucket.id, key, self.child)
        aws.s3.BucketPolicy(
            "kafka-failures",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(
                tls_only("s3:*", [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")])
            ),
            opts=self.child,
        )
        return bucket

    def _function(self, function: Function) -> DeployedFunction:
        args = self.args
        network = {"subnet_ids": list(args.subnet_ids), "security_group_ids": [args.security_group_id]}
        return deploy_lambda(
            self,
            LambdaSpec(
                cell=args.cell,
                function=function,
                archive=args.packages.functions[function.job],
                layer_arn=self.layer.arn,
                key_arn=args.ledgers.key_arn,
                log_retention_days=args.log_retention_days,
                tags=args.tags,
                vpc_config=network if in_vpc(function) else None,
            ),
            lambda log_group_arn: self._access(function, log_group_arn),
            self._environment(function),
        )

    def _access(self, function: Function, log_group_arn: pulumi.Output[str]) -> FunctionAccess:
        args = self.args
        tables = args.ledgers.tables
        access = ledger_access(function, args.ledgers, args.region, log_group_arn, in_vpc=in_vpc(function))
        access.publishes = [args.kafka.topic_arn(topic) for topic in function.publishes]
        if function is PUBLISH and args.home is not None:
            access.assumes = [args.home.role_arn]
        if function.trigger is TriggerKind.KAFKA:
            access.consumes = (
                args.kafka.topic_arn(function.source),
                args.kafka.group_arn(self._group(function)),
            )
            access.failure_bucket = self.failure_bucket.arn
        elif function.trigger is TriggerKind.TABLE_STREAM:
            stream = tables[function.source].stream_arn
            if stream is None:
                raise ValueError(f"function {function.job}: table {function.source} has no stream")
            access.stream = stream
            access.failure_queue = self.failure_queue.arn
        if function is TOPIC_ADMIN:
            access.administers_topics = [args.kafka.topic_arn(topic.name) for topic in args.topics]
        if function.trigger is TriggerKind.KAFKA or function.publishes or access.administers_topics:
            access.kafka_cluster = args.kafka.cluster_arn
        return access

    def _environment(self, function: Function) -> pulumi.Output[dict[str, str]]:
        """What the function's ``AwsSettings.from_env`` reads (tests/infra round-trip it)."""
        if function is TOPIC_ADMIN:  # no meterline function: the request carries what it needs
            return pulumi.Output.from_input({})
        publishes = bool(function.publishes)
        return rendered(
            AwsSettings,
            table_prefix=self.args.ledgers.table_prefix,
            kafka_bootstrap=self.args.kafka.bootstrap_servers if publishes else "",
            **self.args.extra_settings.get(function.job, {}),
        )

    def _group(self, function: Function) -> str:
        return f"{self.args.cell}-{function.job}"

    def _trigger(self, function: Function, deployed: DeployedFunction) -> None:
        args = self.args
        common: dict[str, Any] = {
            "function_name": deployed.arn,
            "batch_size": function.batch_size,
            "maximum_batching_window_in_seconds": function.batching_window_seconds,
            "function_response_types": ["ReportBatchItemFailures"],
            "starting_position": "TRIM_HORIZON",
            "bisect_batch_on_function_error": False,
            "maximum_retry_attempts": STREAM_RETRIES,
            "metrics_config": {"metrics": MAPPING_METRICS},
        }
        if function.trigger is TriggerKind.KAFKA:
            # Partial batch responses and bounded retries on a Kafka trigger need provisioned pollers.
            mapping = aws.lambda_.EventSourceMapping(
                function.job,
                event_source_arn=args.kafka.cluster_arn,
                topics=[function.source],
                amazon_managed_kafka_event_source_config={"consumer_group_id": self._group(function)},
                provisioned_poller_config={
                    "minimum_pollers": args.kafka_pollers.minimum,
                    "maximum_pollers": args.kafka_pollers.maximum,
                },
                destination_config={"on_failure": {"destination_arn": self.failure_bucket.arn}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.topics_ready]),
                **common,
            )
            self.mappings[function.job] = mapping.uuid
        elif function.trigger is TriggerKind.TABLE_STREAM:
            record_age = STREAM_MAX_RECORD_AGE_SECONDS
            if function.job == "aggregate":
                common["maximum_retry_attempts"] = record_age = UNTIL_THE_STREAM_DROPS_IT
            mapping = aws.lambda_.EventSourceMapping(
                function.job,
                event_source_arn=args.ledgers.tables[function.source].stream_arn,
                maximum_record_age_in_seconds=record_age,
                parallelization_factor=1,
                filter_criteria={"filters": [{"pattern": json.dumps(STREAM_FILTERS[function.job])}]},
                destination_config={"on_failure": {"destination_arn": self.failure_queue.arn}},
                opts=self.child,
                **common,
            )
            self.mappings[function.job] = mapping.uuid
        else:
            self._schedule(function, deployed)

    def _schedule(self, function: Function, deployed: DeployedFunction) -> None:
        args = self.args
        scheduled(
            self,
            Scheduled(args.cell, function, deployed.arn, self.failure_queue.arn, args.ledgers.key_arn),
            self.account,
            args.tags,
            enabled=function.job != PUBLISH.job or args.home is not None,
        )

    def _cost_items(self, functions: Sequence[Function]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [
            {"kind": "lambda_layer", "name": f"{self.args.cell}-dependencies", "count": 1}
        ]
        for function in functions:
            trigger = function.trigger.value if function is not TOPIC_ADMIN else "deploy"
            items += lambda_cost_items(self.args.cell, function, self.args.log_retention_days, trigger)
            if function.trigger is TriggerKind.KAFKA:
                items.append(
                    {
                        "kind": "lambda_event_source_mapping",
                        "name": function.job,
                        "source": "kafka",
                        "provisioned_pollers": {
                            "minimum": self.args.kafka_pollers.minimum,
                            "maximum": self.args.kafka_pollers.maximum,
                        },
                    }
                )
            elif function.trigger is TriggerKind.TABLE_STREAM:
                items.append(
                    {"kind": "lambda_event_source_mapping", "name": function.job, "source": "dynamodb_stream"}
                )
            elif function is not TOPIC_ADMIN:
                items.append(
                    {
                        "kind": "scheduler_schedule",
                        "name": function.job,
                        "invocations_per_month": invocations_per_month(function.source),
                    }
                )
        items.append({"kind": "sqs_queue", "name": f"{self.args.cell}-failures", "purpose": "dead letters"})
        items.append(
            {"kind": "s3_bucket", "name": f"{self.args.cell}-kafka-failures", "purpose": "dead letters"}
        )
        return items


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A function that EventBridge Scheduler invokes, and where its failed invocations go."""

    cell: str
    function: Function
    function_arn: pulumi.Input[str]
    failure_queue: pulumi.Input[str]
    key: pulumi.Input[str]
    """The key the failure queue is encrypted with."""


def scheduled(
    parent: pulumi.Resource,
    target: Scheduled,
    account: pulumi.Input[str],
    tags: Mapping[str, str],
    *,
    enabled: bool = True,
) -> None:
    """The schedule of `target` with its own role; `enabled=False` deploys it paused."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{target.function.job}-scheduler",
        name=f"{target.cell}-{target.function.job}-scheduler",
        assume_role_policy=pulumi.Output.json_dumps(assume_role_policy("scheduler.amazonaws.com", account)),
        tags=dict(tags),
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        f"{target.function.job}-scheduler",
        role=role.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Invoke",
                        "Effect": "Allow",
                        "Action": ["lambda:InvokeFunction"],
                        "Resource": [target.function_arn],
                    },
                    {
                        "Sid": "DeadLetter",
                        "Effect": "Allow",
                        "Action": ["sqs:SendMessage"],
                        "Resource": [target.failure_queue],
                    },
                    {
                        "Sid": "DeadLetterKey",
                        "Effect": "Allow",
                        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                        "Resource": [target.key],
                    },
                ],
            }
        ),
        opts=child,
    )
    aws.scheduler.Schedule(
        target.function.job,
        name=f"{target.cell}-{target.function.job}",
        schedule_expression=target.function.source,
        schedule_expression_timezone="UTC",
        flexible_time_window={"mode": "OFF"},
        state="ENABLED" if enabled else "DISABLED",
        target={
            "arn": target.function_arn,
            "role_arn": role.arn,
            "retry_policy": {
                "maximum_retry_attempts": SCHEDULE_RETRIES,
                "maximum_event_age_in_seconds": 3600,
            },
            "dead_letter_config": {"arn": target.failure_queue},
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy]),
    )


@dataclass(frozen=True)
class LambdaSpec:
    """One Lambda of a stack: its definition, package, and what it shares with the stack's others."""

    cell: str
    function: Function
    archive: Path
    layer_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    """Encrypts its log group."""
    log_retention_days: int
    tags: Mapping[str, str]
    vpc_config: Mapping[str, Any] | None


def deploy_lambda(
    parent: pulumi.Resource,
    spec: LambdaSpec,
    access_of: Callable[[pulumi.Output[str]], FunctionAccess],
    environment: pulumi.Input[Mapping[str, pulumi.Input[str]]],
) -> DeployedFunction:
    """The function `<cell>-<job>` with its own role (`access_of(log group ARN)`) and log group."""
    function, tags = spec.function, dict(spec.tags)
    child = pulumi.ResourceOptions(parent=parent)
    job = function.job
    physical = f"{spec.cell}-{job}"
    log_group_name = f"/aws/lambda/{physical}"
    log_group = aws.cloudwatch.LogGroup(
        job,
        name=log_group_name,
        retention_in_days=spec.log_retention_days,
        kms_key_id=spec.key_arn,
        tags=tags,
        opts=child,
    )
    role = aws.iam.Role(
        job,
        name=f"{physical}-function",
        assume_role_policy=json.dumps(assume_role_policy("lambda.amazonaws.com")),
        tags=tags,
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        job,
        role=role.id,
        policy=pulumi.Output.json_dumps(function_policy(access_of(log_group.arn))),
        opts=child,
    )
    resource = aws.lambda_.Function(
        job,
        name=physical,
        runtime=RUNTIME,
        architectures=[ARCHITECTURE],
        handler=HANDLER,
        code=pulumi.FileArchive(str(spec.archive)),
        layers=[spec.layer_arn],
        memory_size=function.memory_mb,
        timeout=function.timeout_seconds,
        role=role.arn,
        vpc_config=dict(spec.vpc_config) if spec.vpc_config is not None else None,
        environment={"variables": environment},
        logging_config={"log_format": "JSON", "log_group": log_group.name},
        tags={**tags, "job": job},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, log_group]),
    )
    return DeployedFunction(function, resource.name, resource.arn, log_group_name, role.arn)


def ledger_access(
    function: Function, ledgers: Ledgers, region: str, log_group_arn: pulumi.Output[str], *, in_vpc: bool
) -> FunctionAccess:
    """What every function may do: write its log group, and read and write its ledgers (their key)."""
    return FunctionAccess(
        log_group_arn=log_group_arn,
        reads=[ledgers.tables[name].arn for name in function.reads],
        writes=[ledgers.tables[name].arn for name in function.writes],
        key=ledgers.key_arn,
        region=region,
        in_vpc=in_vpc,
    )


def lambda_cost_items(
    cell: str, function: Function, log_retention_days: int, trigger: str
) -> list[dict[str, Any]]:
    """What `deploy_lambda` deploys, as the cost model counts it: the function and its log group."""
    name = f"{cell}-{function.job}"
    return [
        {
            "kind": "lambda_function",
            "name": name,
            "job": function.job,
            "memory_mb": function.memory_mb,
            "architecture": ARCHITECTURE,
            "timeout_seconds": function.timeout_seconds,
            "trigger": trigger,
        },
        {"kind": "cloudwatch_log_group", "name": f"/aws/lambda/{name}", "retention_days": log_retention_days},
    ]


def in_vpc(function: Function) -> bool:
    """Whether the function runs in the cell's VPC. publish does not: the home's bucket may be in
    another region, which the VPC's S3 gateway endpoint does not reach (and the VPC has no NAT)."""
    return function is not PUBLISH


def invocations_per_month(expression: str, days: int = 30) -> int:
    """Invocations in a 30-day month of an EventBridge `rate(...)` or `cron(...)` expression whose
    day, month and weekday fields are wildcards."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        per_day = {"minute": 1440, "hour": 24, "day": 1}[rate[2].rstrip("s")]
        return per_day * days // int(rate[1])
    cron = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: (\S+))?\)", expression)
    if not cron or any(field not in ("*", "?") for field in (cron[3], cron[4], cron[5])):
        raise ValueError(f"cannot count invocations of schedule {expression!r}")
    return _cron_field_count(cron[1], 60) * _cron_field_count(cron[2], 24) * days


def _cron_field_count(field: str, size: int) -> int:
    if field == "*":
        return size
    values: set[int] = set()
    for part in field.split(","):
        step_match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not step_match:
            raise ValueError(f"cannot count cron field {field!r}")
        span, step = step_match[1], int(step_match[2] or 1)
        low, high = (0, size - 1) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        values.update(range(low, high + 1, step))
    return len(values)
