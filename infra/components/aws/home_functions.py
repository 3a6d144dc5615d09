"""The billing home's Lambdas, one per `meterline.topology.HOME_FUNCTIONS` entry: `ingest` on the
statements queue (batches, partial batch responses, the queue's redrive after repeated failures),
`rate` and `close` on schedules (failures to an encrypted queue). Outside any VPC: the home reads
DynamoDB, S3 and SNS through their public endpoints, with IAM.

What the home announces (spend alerts, issued invoices: `HOME_TOPICS`) goes to one encrypted SNS
topic each, named after the topic; the jobs find them in `METERLINE_NOTIFICATION_TOPICS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.functions import (
    MAPPING_METRICS,
    DeployedFunction,
    LambdaSpec,
    Scheduled,
    deploy_lambda,
    invocations_per_month,
    lambda_cost_items,
    ledger_access,
    scheduled,
)
from infra.components.aws.iam import FunctionAccess
from infra.components.aws.ledgers import Ledgers
from infra.components.aws.statements import Statements, object_arn
from infra.components.aws.storage import encrypted_queue
from infra.packaging import ARCHITECTURE, LambdaPackages
from infra.settings import rendered
from meterline.adapters.aws_lambda import AwsSettings
from meterline.topology import HOME_CLOSE, STATEMENTS_PREFIX, Function, Topic, TriggerKind


@dataclass(frozen=True, slots=True)
class HomeFunctionsArgs:
    home: str
    region: str
    functions: Sequence[Function]
    topics: Sequence[Topic]
    packages: LambdaPackages
    ledgers: Ledgers
    statements: Statements
    cells: Sequence[str]
    log_retention_days: int
    tags: Mapping[str, str]


class HomeFunctions(pulumi.ComponentResource):
    functions: dict[str, DeployedFunction]
    mappings: dict[str, pulumi.Output[str]]
    notification_topics: dict[str, pulumi.Output[str]]
    """topic name → its SNS topic's ARN."""
    failure_queue_name: pulumi.Output[str]
    cost_items: list[dict[str, Any]]

    def __init__(
        self, name: str, args: HomeFunctionsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("meterline:aws:HomeFunctions", name, None, opts)
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        key = args.ledgers.key_arn
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.layer = aws.lambda_.LayerVersion(
            "dependencies",
            layer_name=f"{args.home}-dependencies",
            code=pulumi.FileArchive(str(args.packages.layer)),
            compatible_runtimes=["python3.13"],
            compatible_architectures=[ARCHITECTURE],
            description="orjson, PyYAML, iso4217, Powertools",
            opts=child,
        )
        self.notification_topics = {
            topic.name: aws.sns.Topic(
                topic.name.replace(".", "-"),
                name=f"{args.home}-{topic.name.replace('.', '-')}",
                kms_master_key_id=key,
                tags={**tags, "purpose": topic.purpose[:250]},
                opts=child,
            ).arn
            for topic in args.topics
        }
        failures = encrypted_queue(self, "failures", f"{args.home}-failures", key, tags)
        self.failure_queue_name = failures.name
        self.functions, self.mappings = {}, {}
        for function in args.functions:

            def access_of(log_group_arn: pulumi.Output[str], function: Function = function) -> FunctionAccess:
                return self._access(function, log_group_arn)

            deployed = deploy_lambda(
                self,
                LambdaSpec(
                    cell=args.home,
                    function=function,
                    archive=args.packages.functions[function.job],
                    layer_arn=self.layer.arn,
                    key_arn=key,
                    log_retention_days=args.log_retention_days,
                    tags=args.tags,
                    vpc_config=None,
                ),
                access_of,
                self._environment(function),
            )
            self.functions[function.job] = deployed
            if function.trigger is TriggerKind.OBJECT_CREATED:
                mapping = aws.lambda_.EventSourceMapping(
                    function.job,
                    event_source_arn=args.statements.queue_arn,
                    function_name=deployed.arn,
                    batch_size=function.batch_size,
                    maximum_batching_window_in_seconds=function.batching_window_seconds,
                    function_response_types=["ReportBatchItemFailures"],
                    metrics_config={"metrics": MAPPING_METRICS},
                    opts=child,
                )
                self.mappings[function.job] = mapping.uuid
            elif function.trigger is TriggerKind.SCHEDULE:
                scheduled(
                    self, Scheduled(args.home, function, deployed.arn, failures.arn, key), account, tags
                )
            else:
                raise ValueError(
                    f"home function {function.job}: no {function.trigger.value} trigger in a home"
                )
        self.cost_items = self._cost_items()
        self.register_outputs({job: deployed.arn for job, deployed in self.functions.items()})

    def _access(self, function: Function, log_group_arn: pulumi.Output[str]) -> FunctionAccess:
        args = self.args
        access = ledger_access(function, args.ledgers, args.region, log_group_arn, in_vpc=False)
        access.notifies = [self.notification_topics[topic] for topic in function.publishes]
        if function.trigger is TriggerKind.OBJECT_CREATED:
            access.queue = args.statements.queue_arn
            access.reads_objects = [object_arn(args.statements.bucket_arn, STATEMENTS_PREFIX)]
            access.objects_key = args.statements.key_arn
        return access

    def _environment(self, function: Function) -> pulumi.Output[dict[str, str]]:
        """What the function's ``AwsSettings.from_env`` reads (tests/infra round-trip it): the
        home's ledgers; ingest its bucket; what announces, its SNS topics; close, the cells that
        must report each period final (it waits the catalog's ``billing.cell_wait`` for them)."""
        args = self.args
        inputs: dict[str, pulumi.Input[Any]] = {"table_prefix": args.ledgers.table_prefix}
        if function.trigger is TriggerKind.OBJECT_CREATED:
            inputs["statements_bucket"] = args.statements.bucket_name
        if function.publishes:
            inputs["notification_topics"] = pulumi.Output.json_dumps(
                {topic: self.notification_topics[topic] for topic in function.publishes}
            )
        if function.job == HOME_CLOSE.job:
            inputs["cells"] = tuple(args.cells)
        return rendered(AwsSettings, **inputs)

    def _cost_items(self) -> list[dict[str, Any]]:
        args = self.args
        items: list[dict[str, Any]] = [
            {"kind": "lambda_layer", "name": f"{args.home}-dependencies", "count": 1}
        ]
        for function in args.functions:
            items += lambda_cost_items(args.home, function, args.log_retention_days, function.trigger.value)
            if function.trigger is TriggerKind.SCHEDULE:
                items.append(
                    {
                        "kind": "scheduler_schedule",
                        "name": function.job,
                        "invocations_per_month": invocations_per_month(function.source),
                    }
                )
        items.append({"kind": "sqs_queue", "name": f"{args.home}-failures", "purpose": "dead letters"})
        items += [
            {"kind": "sns_topic", "name": f"{args.home}-{topic.name.replace('.', '-')}", "count": 1}
            for topic in args.topics
        ]
        return items
