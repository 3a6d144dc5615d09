"""Pulumi mocks that answer like AWS, GCP and Azure: realistic ids, names and ARNs (resource paths)
for every resource a cell creates, and a record of each resource's inputs (wire names, as policies
see them) and of the options the engine would act on: the resources each waits for (its inputs'
resources and its `depends_on`, a component expanded to its children, as the SDK sends them),
`protect` and `retain_on_delete`."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

ACCOUNT = "123456789012"
GCP_PROJECT_NUMBER = "429815730216"
AZURE_SUBSCRIPTION = "6f0b2c8e-3d51-4a7e-9c1a-2b7d90e4f315"
AZURE_TENANT = "0d7e43a9-8c26-4b1f-a5e0-93c6d1f27b48"
PACKAGE_BLOB = "pulumi-python:dynamic/meterline:PackageBlob"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
GCP_AGENT_DOMAINS = {"monitoring": "gcp-sa-monitoring-notification"}
"""Service agents whose domain is not `gcp-sa-<service>`."""


class CellMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str, project: str = "meterline-test") -> None:
        self.region = region
        self.project = project
        self.resources: list[dict[str, Any]] = []
        self.options: dict[str, dict[str, Any]] = {}
        self.references: list[str] = []
        """The stacks this one reads (`pulumi.StackReference`), by name."""
        """`type::name` → what the resource's registration asked of the engine."""

    def watch(self, monitor: Any) -> None:
        """Record the options of every registration the mock `monitor` receives (the mocks' own
        `new_resource` sees only inputs)."""
        register = monitor.RegisterResource

        def recording(request: Any) -> Any:
            key = resource_key(request.type, request.name)
            if key in self.options:
                raise ValueError(f"two resources are registered as {key}: tests could not tell them apart")
            self.options[key] = {
                "dependencies": sorted({urn_key(urn) for urn in request.dependencies}),
                "protect": bool(request.protect),
                "retain_on_delete": bool(request.retainOnDelete),
                "parent": urn_key(request.parent) if request.parent else None,
            }
            return register(request)

        monitor.RegisterResource = recording

    def recorded(self) -> list[dict[str, Any]]:
        """Each resource's type, name and inputs, with its recorded options."""
        return [
            {**resource, **self.options.get(resource_key(resource["type"], resource["name"]), {})}
            for resource in self.resources
        ]

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "id": ACCOUNT,
                "userId": "AIDAEXAMPLE",
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if args.token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId") or self.project
            return {
                "projectId": project,
                "number": GCP_PROJECT_NUMBER,
                "name": project,
                "id": f"projects/{project}",
            }
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            email = f"service-{GCP_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
            return {"emailAddress": email, "member": f"serviceAccount:{email}", "id": email}
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                "objectId": "5a1c9e2f-7b34-4d08-8e61-c3f2a9d0b7e5",
                "subscriptionId": AZURE_SUBSCRIPTION,
                "tenantId": AZURE_TENANT,
            }
        return {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ == STACK_REFERENCE:  # a read of another stack, not a resource of this one
            name = str(args.resource_id or inputs["name"])
            self.references.append(name)
            return name, {"name": name, "outputs": referenced_outputs(name), "secretOutputNames": []}
        self.resources.append({"type": args.typ, "name": args.name, "inputs": inputs})
        if not args.custom:
            return None, inputs
        if args.typ == PACKAGE_BLOB:
            url = f"{str(inputs['account_url']).rstrip('/')}/{inputs['container']}/{inputs['blob']}"
            return url, {**inputs, "url": url, "etag": f'"0x{_suffix(url, 15).upper()}"'}
        if args.typ.startswith("gcp:"):
            resource_id, outputs = _gcp_outputs(args.typ, args.name, inputs, self.region, self.project)
        elif args.typ.startswith("azure-native:"):
            resource_id, outputs = _azure_outputs(args.typ, args.name, inputs)
        else:
            resource_id, outputs = _outputs(args.typ, args.name, inputs, self.region)
        return resource_id, {**inputs, **outputs}


def referenced_outputs(stack_name: str) -> dict[str, Any]:
    """What a deployed stack of this repository would export for what the others read of it: a
    home its statements bucket and cell roles, a cell its publisher identity (the ids these mocks
    give the resources that stack creates). `org/project/stack` names the stack file `stack`."""
    from infra.components.home_link import publisher_role_name, statements_bucket_name, statements_role_name
    from infra.config import load_stack_config, read_stack_file

    stack = stack_name.rsplit("/", 1)[-1]
    config = load_stack_config(stack, read_stack_file(stack))
    if config.home_settings is not None:
        roles = {
            cell.name: f"arn:aws:iam::{ACCOUNT}:role/{statements_role_name(config, cell.name)}"
            for cell in config.home_settings.cells
        }
        return {
            "statements": {"bucket": statements_bucket_name(config), "region": config.region},
            "cell_roles": roles,
        }
    publisher: dict[str, Any] = {"cloud": config.cloud, "cell": config.stack}
    if config.cloud == "aws":
        publisher["role_arn"] = f"arn:aws:iam::{ACCOUNT}:role/{publisher_role_name(config)}"
    elif config.cloud == "gcp":
        publisher["service_account_unique_id"] = _gcp_unique_id("publish")
    else:
        publisher |= {"tenant_id": AZURE_TENANT, "principal_id": _guid("publish")}
    return {"publisher": publisher}


def _gcp_unique_id(name: str) -> str:
    return str(int(_suffix(name, 12), 16))


def resource_key(token: str, name: str) -> str:
    return f"{token}::{name}"


def urn_key(urn: str) -> str:
    """`urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME` → `TYPE::NAME`."""
    _, _, qualified_type, name = urn.split("::", 3)
    return resource_key(qualified_type.rsplit("$", 1)[-1], name)


def _suffix(name: str, length: int = 8) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _guid(seed: str) -> str:
    """A GUID-shaped id (8-4-4-4-12 hex digits) that depends only on `seed`."""
    return "-".join(
        _suffix(seed + part, size) for part, size in (("", 8), ("1", 4), ("2", 4), ("3", 4), ("4", 12))
    )


def _outputs(typ: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    arn = f"arn:aws:{{service}}:{region}:{ACCOUNT}:{{path}}"
    physical = inputs.get("name") or f"{name}-{_suffix(name, 7)}"
    match typ:
        case "aws:ec2/vpc:Vpc":
            return f"vpc-{_suffix(name, 17)}", {
                "arn": arn.format(service="ec2", path=f"vpc/vpc-{_suffix(name, 17)}")
            }
        case "aws:ec2/subnet:Subnet":
            return f"subnet-{_suffix(name, 17)}", {}
        case "aws:ec2/routeTable:RouteTable":
            return f"rtb-{_suffix(name, 17)}", {}
        case "aws:ec2/securityGroup:SecurityGroup":
            return f"sg-{_suffix(name, 17)}", {}
        case "aws:ec2/vpcEndpoint:VpcEndpoint":
            return f"vpce-{_suffix(name, 17)}", {}
        case "aws:kms/key:Key":
            key_id = (
                f"{_suffix(name + 'a')}-{_suffix(name, 4)}-{_suffix(name + 'b', 4)}-{_suffix(name + 'c', 12)}"
            )
            return key_id, {"keyId": key_id, "arn": arn.format(service="kms", path=f"key/{key_id}")}
        case "aws:dynamodb/table:Table":
            table = arn.format(service="dynamodb", path=f"table/{physical}")
            stream = f"{table}/stream/2026-11-28T17:42:00.000" if inputs.get("streamEnabled") else ""
            return physical, {
                "arn": table,
                "streamArn": stream,
                "streamLabel": "2026-11-28T17:42:00.000" if stream else "",
            }
        case "aws:msk/serverlessCluster:ServerlessCluster":
            uuid = f"{_suffix(name, 8)}-{_suffix(name + '1', 4)}-{_suffix(name + '2', 4)}-s1"
            cluster = arn.format(service="kafka", path=f"cluster/{inputs['clusterName']}/{uuid}")
            brokers = f"boot-{_suffix(name, 8)}.c1.kafka-serverless.{region}.amazonaws.com:9098"
            return cluster, {"arn": cluster, "clusterUuid": uuid, "bootstrapBrokersSaslIam": brokers}
        case "aws:lambda/function:Function":
            function = arn.format(service="lambda", path=f"function:{physical}")
            return physical, {
                "arn": function,
                "qualifiedArn": f"{function}:$LATEST",
                "version": "$LATEST",
                "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                f"{function}/invocations",
            }
        case "aws:lambda/layerVersion:LayerVersion":
            layer = arn.format(service="lambda", path=f"layer:{inputs['layerName']}")
            return f"{layer}:1", {"arn": f"{layer}:1", "layerArn": layer, "version": "1"}
        case "aws:iam/role:Role":
            return physical, {
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
                "uniqueId": f"AROA{_suffix(name, 17)}",
            }
        case "aws:cloudwatch/logGroup:LogGroup":
            return physical, {"arn": arn.format(service="logs", path=f"log-group:{physical}")}
        case "aws:sqs/queue:Queue":
            return (
                f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}",
                {
                    "arn": arn.format(service="sqs", path=physical),
                    "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}",
                },
            )
        case "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{inputs.get('bucketPrefix', name)}{_suffix(name, 12)}"
            return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        case "aws:sns/topic:Topic":
            return arn.format(service="sns", path=physical), {"arn": arn.format(service="sns", path=physical)}
        case "aws:scheduler/schedule:Schedule":
            return f"default/{physical}", {
                "arn": arn.format(service="scheduler", path=f"schedule/default/{physical}")
            }
        case "aws:lambda/eventSourceMapping:EventSourceMapping":
            parts = (("", 8), ("1", 4), ("2", 4), ("3", 12))
            uuid = "-".join(_suffix(name + part, size) for part, size in parts)
            return uuid, {
                "uuid": uuid,
                "arn": arn.format(service="lambda", path=f"event-source-mapping:{uuid}"),
            }
        case "aws:cloudwatch/metricAlarm:MetricAlarm":
            return physical, {"arn": arn.format(service="cloudwatch", path=f"alarm:{physical}")}
        case "aws:cloudwatch/dashboard:Dashboard":
            return inputs["dashboardName"], {
                "dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{inputs['dashboardName']}"
            }
        case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            path = str(inputs["url"]).removeprefix("https://")
            return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{path}", {
                "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{path}"
            }
        case "aws:lambda/invocation:Invocation":
            return f"{_suffix(name, 32)}", {"result": '{"created": [], "repartitioned": [], "drift": []}'}
        case _:
            return f"{name}-{_suffix(name, 12)}", {}


def _gcp_outputs(
    typ: str, name: str, inputs: dict[str, Any], region: str, project: str
) -> tuple[str, dict[str, Any]]:
    """GCP resources are named by their paths (`projects/P/locations/L/...`)."""
    location = inputs.get("location") or inputs.get("region") or region
    match typ:
        case "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            path = f"projects/{project}/serviceAccounts/{email}"
            return path, {
                "email": email,
                "member": f"serviceAccount:{email}",
                "name": path,
                "uniqueId": _gcp_unique_id(name),
            }
        case "gcp:projects/service:Service":
            return f"{project}/{inputs['service']}", {}
        case "gcp:projects/serviceIdentity:ServiceIdentity":
            label = str(inputs["service"]).split(".", 1)[0]
            domain = GCP_AGENT_DOMAINS.get(label, f"gcp-sa-{label}")
            email = f"service-{GCP_PROJECT_NUMBER}@{domain}.iam.gserviceaccount.com"
            return f"projects/{project}/services/{inputs['service']}", {
                "email": email,
                "member": f"serviceAccount:{email}",
            }
        case "gcp:kms/keyRing:KeyRing":
            return f"projects/{project}/locations/{location}/keyRings/{inputs['name']}", {}
        case "gcp:kms/cryptoKey:CryptoKey":
            return f"{inputs['keyRing']}/cryptoKeys/{inputs['name']}", {}
        case "gcp:managedkafka/cluster:Cluster":
            return f"projects/{project}/locations/{location}/clusters/{inputs['clusterId']}", {}
        case "gcp:managedkafka/topic:Topic":
            cluster = f"projects/{project}/locations/{location}/clusters/{inputs['cluster']}"
            path = f"{cluster}/topics/{inputs['topicId']}"
            return path, {"name": path}
        case "gcp:managedkafka/connectCluster:ConnectCluster":
            path = f"projects/{project}/locations/{location}/connectClusters/{inputs['connectClusterId']}"
            return path, {"name": path, "state": "ACTIVE"}
        case "gcp:pubsub/topic:Topic":
            return f"projects/{project}/topics/{inputs['name']}", {}
        case "gcp:firestore/database:Database":
            return f"projects/{project}/databases/{inputs['name']}", {"uid": _suffix(name, 32)}
        case "gcp:compute/network:Network":
            return f"projects/{project}/global/networks/{inputs['name']}", {
                "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/global/networks/{inputs['name']}"
            }
        case "gcp:compute/subnetwork:Subnetwork":
            return f"projects/{project}/regions/{location}/subnetworks/{inputs['name']}", {}
        case "gcp:storage/bucket:Bucket":
            return inputs["name"], {
                "url": f"gs://{inputs['name']}",
                "selfLink": f"https://www.googleapis.com/storage/v1/b/{inputs['name']}",
            }
        case "gcp:storage/bucketObject:BucketObject":
            return f"{inputs['bucket']}-{inputs['name']}", {"generation": 1, "md5hash": _suffix(name, 24)}
        case "gcp:cloudfunctionsv2/function:Function":
            service = inputs["name"]
            url = f"https://{service}-{GCP_PROJECT_NUMBER}.{location}.run.app"
            config = {
                **inputs.get("serviceConfig", {}),
                "service": f"projects/{project}/locations/{location}/services/{service}",
                "uri": url,
            }
            return f"projects/{project}/locations/{location}/functions/{service}", {
                "url": url,
                "serviceConfig": config,
                "state": "ACTIVE",
            }
        case "gcp:monitoring/notificationChannel:NotificationChannel":
            return f"projects/{project}/notificationChannels/{int(_suffix(name, 15), 16)}", {}
        case "gcp:monitoring/alertPolicy:AlertPolicy":
            return f"projects/{project}/alertPolicies/{int(_suffix(name, 15), 16)}", {}
        case "gcp:cloudscheduler/job:Job":
            return f"projects/{project}/locations/{location}/jobs/{inputs['name']}", {}
        case _:
            return f"{name}-{_suffix(name, 12)}", {}


def _azure_outputs(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Azure resources are named by their ARM ids; identities get principal and client ids."""
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # ARM answers a map of identity id → its principal and client ids.
        identity = {**identity, "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]}}
        inputs = {**inputs, "identity": identity}
    id_, outputs = _azure_resource(typ, name, inputs)
    return id_, ({"identity": identity, **outputs} if identity is not None else outputs)


def _azure_resource(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    subscription = f"/subscriptions/{AZURE_SUBSCRIPTION}"
    group = f"{subscription}/resourceGroups/{inputs.get('resourceGroupName', '')}"
    guid = _guid(name)
    match typ:
        case "azure-native:resources:ResourceGroup":
            return f"{subscription}/resourceGroups/{inputs['resourceGroupName']}", {
                "name": inputs["resourceGroupName"]
            }
        case "azure-native:managedidentity:UserAssignedIdentity":
            path = (
                f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{inputs['resourceName']}"
            )
            return path, {
                "name": inputs["resourceName"],
                "principalId": guid,
                "clientId": _guid(name + "c"),
                "tenantId": AZURE_TENANT,
            }
        case "azure-native:storage:StorageAccount":
            account = inputs["accountName"]
            path = f"{group}/providers/Microsoft.Storage/storageAccounts/{account}"
            endpoints = {
                kind: f"https://{account}.{kind}.core.windows.net/" for kind in ("blob", "table", "queue")
            }
            return path, {"name": account, "primaryEndpoints": endpoints}
        case "azure-native:storage:Table":
            account = inputs["accountName"]
            return (
                f"{group}/providers/Microsoft.Storage/storageAccounts/{account}/tableServices/default/tables/{inputs['tableName']}",
                {"name": inputs["tableName"], "tableName": inputs["tableName"]},
            )
        case "azure-native:storage:BlobContainer":
            account = inputs["accountName"]
            return (
                f"{group}/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/{inputs['containerName']}",
                {"name": inputs["containerName"]},
            )
        case "azure-native:eventhub:Namespace":
            namespace = inputs["namespaceName"]
            return f"{group}/providers/Microsoft.EventHub/namespaces/{namespace}", {
                "name": namespace,
                "serviceBusEndpoint": f"https://{namespace}.servicebus.windows.net:443/",
                "kafkaEnabled": True,
            }
        case "azure-native:eventhub:EventHub":
            return (
                f"{group}/providers/Microsoft.EventHub/namespaces/{inputs['namespaceName']}/eventhubs/{inputs['eventHubName']}",
                {"name": inputs["eventHubName"]},
            )
        case "azure-native:eventhub:ConsumerGroup":
            return (
                f"{group}/providers/Microsoft.EventHub/namespaces/{inputs['namespaceName']}/eventhubs/{inputs['eventHubName']}/consumergroups/{inputs['consumerGroupName']}",
                {"name": inputs["consumerGroupName"]},
            )
        case "azure-native:keyvault:Vault":
            vault = inputs["vaultName"]
            return f"{group}/providers/Microsoft.KeyVault/vaults/{vault}", {
                "name": vault,
                "properties": {
                    **inputs.get("properties", {}),
                    "vaultUri": f"https://{vault}.vault.azure.net/",
                },
            }
        case "azure-native:keyvault:Key":
            vault, key = inputs["vaultName"], inputs["keyName"]
            return f"{group}/providers/Microsoft.KeyVault/vaults/{vault}/keys/{key}", {
                "name": key,
                "keyUri": f"https://{vault}.vault.azure.net/keys/{key}",
                "keyUriWithVersion": f"https://{vault}.vault.azure.net/keys/{key}/{_suffix(name, 32)}",
            }
        case "azure-native:operationalinsights:Workspace":
            return f"{group}/providers/Microsoft.OperationalInsights/workspaces/{inputs['workspaceName']}", {
                "name": inputs["workspaceName"],
                "customerId": guid,
            }
        case "azure-native:applicationinsights:Component":
            return f"{group}/providers/Microsoft.Insights/components/{inputs['resourceName']}", {
                "name": inputs["resourceName"],
                "connectionString": f"InstrumentationKey={guid};IngestionEndpoint="
                f"https://{inputs.get('location', 'eastus')}.in.applicationinsights.azure.com/",
                "instrumentationKey": guid,
            }
        case "azure-native:web:AppServicePlan":
            return f"{group}/providers/Microsoft.Web/serverfarms/{inputs['name']}", {}
        case "azure-native:web:WebApp":
            return f"{group}/providers/Microsoft.Web/sites/{inputs['name']}", {
                "defaultHostName": f"{inputs['name']}.azurewebsites.net"
            }
        case "azure-native:monitor:ActionGroup":
            return f"{group}/providers/Microsoft.Insights/actionGroups/{inputs['actionGroupName']}", {}
        case "azure-native:monitor:MetricAlert":
            return f"{group}/providers/Microsoft.Insights/metricAlerts/{inputs['ruleName']}", {}
        case "azure-native:authorization:RoleAssignment":
            return (
                f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{inputs['roleAssignmentName']}",
                {},
            )
        case _:
            return f"{group}/providers/{name}-{_suffix(name, 12)}", {}
