"""The billing home's stack under mocks: each cell's identity may write its own statements and
nothing else, the home's functions cannot write a cell's ledgers, the bucket is create-only, and the
cells know their home."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from infra.components.aws.trust import GOOGLE, entra_issuer
from infra.components.home_link import STATEMENTS_AUDIENCE
from infra.config import ConfigError, load_stack_config, read_stack_file, stack_names
from meterline.topology import CELL_TABLES, HOME_FUNCTIONS, HOME_TABLES, STATEMENTS_PREFIX
from tests.infra.builds import named, of_type, policy_document

HOME = "home-aws-us-east-1"
CELLS = [stack for stack in stack_names() if not stack.startswith("home-")]
ROLE = "aws:iam/role:Role"


@pytest.fixture(scope="module")
def home(previews: dict[str, Any]) -> dict[str, Any]:
    return previews[HOME]


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an identity-based policy allows `action` on `resource` (wildcards as IAM reads them;
    this policy has no Deny and no NotAction)."""
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if (
            statement["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action, a) for a in actions)
            and any(fnmatch.fnmatchcase(resource, r) for r in resources)
        ):
            return True
    return False


def test_the_home_stack_previews_with_one_role_per_cell_and_every_cell_in_its_outputs(
    home: dict[str, Any],
) -> None:
    # GIVEN the home's stack file listing every cell  WHEN it is built under mocks
    config = load_stack_config(HOME, read_stack_file(HOME))
    assert config.home_settings is not None
    cells = [cell.name for cell in config.home_settings.cells]
    # THEN every cell stack in stacks/ is one of its cells, each with its own statements role
    assert sorted(cells) == sorted(CELLS)
    assert sorted(home["outputs"]["cell_roles"]) == sorted(cells)
    roles = {r["name"]: r["inputs"] for r in of_type(home, ROLE)}
    for cell in cells:
        assert home["outputs"]["cell_roles"][cell].endswith(f"role/{roles[cell]['name']}")
    # AND the cells given by stack are read by StackReference, the others from config
    by_stack = sorted(c.stack for c in config.home_settings.cells if c.stack)
    assert home["references"] == by_stack and len(by_stack) < len(cells)
    # AND it has the home's ledgers, functions and a bucket, and no Kafka, no VPC
    tables = sorted(r["name"] for r in of_type(home, "aws:dynamodb/table:Table"))
    assert tables == sorted(t.name for t in HOME_TABLES)
    assert sorted(r["name"] for r in of_type(home, "aws:lambda/function:Function")) == sorted(
        f.job for f in HOME_FUNCTIONS
    )
    assert not [r for r in home["resources"] if r["type"].startswith(("aws:msk", "aws:ec2"))]


@pytest.mark.parametrize("cell", CELLS)
def test_each_cells_identity_can_write_its_statements_and_nothing_else(
    home: dict[str, Any], cell: str
) -> None:
    # GIVEN the role the home made for the cell, and the statements bucket and its key
    document = policy_document(home, cell)
    [bucket] = of_type(home, "aws:s3/bucket:Bucket")
    bucket_arn = f"arn:aws:s3:::{bucket['inputs']['bucket']}"
    key = named(home, "aws:kms/key:Key", "statements")
    own = f"{bucket_arn}/{STATEMENTS_PREFIX}{cell}/2026-11/st-1.json"
    # THEN it may put and get its own statements and final marker
    assert allowed(document, "s3:PutObject", own) and allowed(document, "s3:GetObject", own)
    assert allowed(document, "s3:PutObject", f"{bucket_arn}/{STATEMENTS_PREFIX}{cell}/2026-11/final.json")
    # AND nothing of another cell's, outside statements/, of the bucket itself, or any other action
    for other in CELLS:
        if other != cell:
            assert not allowed(
                document, "s3:PutObject", f"{bucket_arn}/{STATEMENTS_PREFIX}{other}/2026-11/x.json"
            )
    assert not allowed(document, "s3:PutObject", f"{bucket_arn}/{STATEMENTS_PREFIX}{cell}-evil/x.json")
    assert not allowed(document, "s3:PutObject", f"{bucket_arn}/elsewhere/{cell}/x.json")
    for action in ("s3:DeleteObject", "s3:ListBucket", "s3:PutBucketPolicy", "s3:PutObjectAcl"):
        assert not allowed(document, action, own) and not allowed(document, action, bucket_arn)
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {"s3:PutObject", "s3:GetObject", "kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"}
    # AND the key only through S3, and no other key (the ledgers' key is not the bucket's)
    [key_statement] = [s for s in document["Statement"] if s["Sid"] == "StatementsKey"]
    assert key_statement["Resource"] == [key_id_arn(home, key)]
    assert key_statement["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    ledger_key = named(home, "aws:kms/key:Key", "cell")
    assert not allowed(document, "kms:Decrypt", key_id_arn(home, ledger_key))
    # AND no table of the home
    for table in of_type(home, "aws:dynamodb/table:Table"):
        assert not allowed(document, "dynamodb:PutItem", table_arn(table))


def key_id_arn(build: dict[str, Any], key: dict[str, Any]) -> str:
    """The key's ARN as the mocks give it (the policies reference it as an output)."""
    arns = {
        resource: statement["Resource"][0]
        for resource in ("statements", "cell")
        for r in of_type(build, "aws:iam/rolePolicy:RolePolicy")
        for statement in json.loads(r["inputs"]["policy"])["Statement"]
        if statement["Sid"] in ("StatementsKey", "LedgerKey")
        and (statement["Sid"] == "StatementsKey") == (resource == "statements")
    }
    return arns[key["name"]]


def table_arn(table: dict[str, Any]) -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{table['inputs']['name']}"


@pytest.mark.parametrize("cell", CELLS)
def test_only_the_cells_publish_identity_may_assume_its_role(
    home: dict[str, Any], previews: dict[str, Any], cell: str
) -> None:
    # GIVEN the cell's own build (what it exports as its publisher) and the home's role for it
    publisher = previews[cell]["outputs"]["publisher"]
    [trust] = json.loads(named(home, ROLE, cell)["inputs"]["assumeRolePolicy"])["Statement"]
    cloud = cell.split("-", 1)[0]
    # THEN exactly that identity is trusted, by the mechanism of its cloud, with no secret involved
    if cloud == "aws":
        assert trust["Principal"] == {"AWS": publisher["role_arn"]} and trust["Action"] == "sts:AssumeRole"
        assert publisher["role_arn"].endswith("-publish-function")
    elif cloud == "gcp":
        assert trust["Principal"] == {"Federated": GOOGLE}
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        unique_id = publisher["service_account_unique_id"]
        assert trust["Condition"] == {
            "StringEquals": {
                f"{GOOGLE}:aud": unique_id,
                f"{GOOGLE}:sub": unique_id,
                f"{GOOGLE}:oaud": STATEMENTS_AUDIENCE["gcp"],
            }
        }
    else:
        config = load_stack_config(HOME, read_stack_file(HOME))
        assert config.home_settings is not None
        [entry] = [c for c in config.home_settings.cells if c.name == cell]
        principal = entry.azure_principal_id or publisher["principal_id"]
        issuer = entra_issuer(str(entry.azure_tenant_id)).removeprefix("https://")
        assert trust["Principal"]["Federated"].endswith(f":oidc-provider/{issuer}")
        assert trust["Condition"] == {
            "StringEquals": {f"{issuer}:sub": principal, f"{issuer}:aud": STATEMENTS_AUDIENCE["azure"]}
        }
    # AND the cell's publish function knows that role as its home's
    assert publisher["cell"] == cell


def test_one_oidc_provider_per_entra_tenant_with_the_audience_cells_ask_for(home: dict[str, Any]) -> None:
    providers = of_type(home, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    config = load_stack_config(HOME, read_stack_file(HOME))
    assert config.home_settings is not None
    tenants = {c.azure_tenant_id for c in config.home_settings.cells if c.cloud == "azure"}
    assert sorted(p["inputs"]["url"] for p in providers) == sorted(entra_issuer(str(t)) for t in tenants)
    assert all(p["inputs"]["clientIdLists"] == [STATEMENTS_AUDIENCE["azure"]] for p in providers)


def test_the_homes_functions_cannot_write_any_cells_ledgers(
    home: dict[str, Any], previews: dict[str, Any]
) -> None:
    # GIVEN every cell's tables (AWS cells: DynamoDB ARNs) and the home's function roles
    cell_tables = [
        table_arn_of(build, table)
        for stack, build in previews.items()
        if stack.startswith("aws-")
        for table in of_type(build, "aws:dynamodb/table:Table")
    ]
    assert len(cell_tables) == 3 * len(CELL_TABLES)
    for function in HOME_FUNCTIONS:
        document = policy_document(home, function.job)
        # THEN none may write (or read) a cell's table, and none writes a statement
        for arn in cell_tables:
            assert not allowed(document, "dynamodb:PutItem", arn) and not allowed(
                document, "dynamodb:Query", arn
            )
        assert not any(
            allowed(document, "s3:PutObject", f"arn:aws:s3:::x/{STATEMENTS_PREFIX}{c}/p/s.json")
            for c in CELLS
        )
        # AND nothing outside the home's account and region
        resources = [r for s in document["Statement"] for r in s["Resource"] if r != "*"]
        assert all(
            r.startswith(
                (
                    "arn:aws:logs:us-east-1:",
                    "arn:aws:dynamodb:us-east-1:",
                    "arn:aws:kms:us-east-1:",
                    "arn:aws:sqs:us-east-1:",
                    "arn:aws:sns:us-east-1:",
                    "arn:aws:s3:::",
                )
            )
            for r in resources
        )
    # AND ingest reads statements, and only them
    ingest = policy_document(home, "ingest")
    [bucket] = of_type(home, "aws:s3/bucket:Bucket")
    assert allowed(
        ingest,
        "s3:GetObject",
        f"arn:aws:s3:::{bucket['inputs']['bucket']}/{STATEMENTS_PREFIX}aws-us-east-1/p/s.json",
    )
    assert not allowed(ingest, "s3:GetObject", f"arn:aws:s3:::{bucket['inputs']['bucket']}/other/x")


def table_arn_of(build: dict[str, Any], table: dict[str, Any]) -> str:
    region = build["outputs"]["cost_inputs"]["region"]
    return f"arn:aws:dynamodb:{region}:123456789012:table/{table['inputs']['name']}"


def test_the_statements_bucket_is_create_only_tls_only_private_versioned_and_encrypted(
    home: dict[str, Any],
) -> None:
    [policy] = of_type(home, "aws:s3/bucketPolicy:BucketPolicy")
    statements = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}
    overwrite = statements["DenyOverwritingStatements"]
    assert overwrite["Effect"] == "Deny" and overwrite["Action"] == "s3:PutObject"
    assert overwrite["Resource"].endswith(f"/{STATEMENTS_PREFIX}*")
    assert overwrite["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [access] = of_type(home, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        access["inputs"][k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [versioning] = of_type(home, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning["inputs"]["versioningConfiguration"]["status"] == "Enabled"
    [sse] = of_type(
        home, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    [rule] = sse["inputs"]["rules"]
    assert (
        rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms" and rule["bucketKeyEnabled"]
    )
    [lifecycle] = of_type(home, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [expiry] = lifecycle["inputs"]["rules"]
    assert expiry["filter"]["prefix"] == STATEMENTS_PREFIX and expiry["expiration"]["days"] >= 366
    [notification] = of_type(home, "aws:s3/bucketNotification:BucketNotification")
    [queue] = notification["inputs"]["queues"]
    assert queue["filterPrefix"] == STATEMENTS_PREFIX and queue["events"] == ["s3:ObjectCreated:*"]


def test_the_home_alarms_on_conflicting_statements_silent_cells_and_ingest_failures(
    home: dict[str, Any],
) -> None:
    alarms = {r["name"]: r["inputs"] for r in of_type(home, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarms["ingest-statement-conflicts"]["dimensions"] == {"service": "ingest"}
    assert alarms["close-silent-cells"]["metricName"] == "silent_cells"
    assert alarms["close-silent-cells"]["threshold"] == 0
    assert alarms["statements-redrive"]["namespace"] == "AWS/SQS"
    assert {"ingest-errors", "rate-errors", "close-errors", "ingest-failed-invoke"} <= set(alarms)
    [dashboard] = of_type(home, "aws:cloudwatch/dashboard:Dashboard")
    assert "silent_cells" in dashboard["inputs"]["dashboardBody"]


def test_the_close_knows_the_cells_it_waits_for(home: dict[str, Any]) -> None:
    # (how long: the catalog's billing.cell_wait, as the close's grace is the catalog's)
    variables = named(home, "aws:lambda/function:Function", "close")["inputs"]["environment"]["variables"]
    assert sorted(variables["METERLINE_CELLS"].split(",")) == sorted(CELLS)
    assert "METERLINE_CELL_WAIT" not in variables
    rate = named(home, "aws:lambda/function:Function", "rate")["inputs"]["environment"]["variables"]
    assert set(json.loads(rate["METERLINE_NOTIFICATION_TOPICS"])) == {"billing.alerts"}


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_publishes_to_its_own_role_in_the_home_and_its_schedule_runs(
    home: dict[str, Any], previews: dict[str, Any], cell: str
) -> None:
    build = previews[cell]
    if cell.startswith("aws-"):
        variables = named(build, "aws:lambda/function:Function", "publish")["inputs"]["environment"][
            "variables"
        ]
        [schedule] = of_type(build, "aws:scheduler/schedule:Schedule")
        assert schedule["inputs"]["state"] == "ENABLED"
        assert policy_document(build, "publish")["Statement"][-1]["Resource"] == [
            variables["METERLINE_STATEMENTS_ROLE_ARN"]
        ]
    elif cell.startswith("gcp-"):
        function = named(build, "gcp:cloudfunctionsv2/function:Function", "publish")
        variables = function["inputs"]["serviceConfig"]["environmentVariables"]
    else:
        [app] = [a for a in of_type(build, "azure-native:web:WebApp") if a["name"] == "publish"]
        variables = {s["name"]: s["value"] for s in app["inputs"]["siteConfig"]["appSettings"]}
        assert "AzureWebJobs.publish.Disabled" not in variables
    assert variables["METERLINE_CELL_NAME"] == cell
    assert variables["METERLINE_STATEMENTS_ROLE_ARN"] == home["outputs"]["cell_roles"][cell]
    assert variables["METERLINE_STATEMENTS_BUCKET"] == home["outputs"]["statements"]["bucket"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("meterline:cells", "[]", "meterline:cells must be a non-empty list"),
        ("meterline:cells", '[{"name": "aws-us-east-1"}]', "meterline:cells[0] needs exactly one of `stack`"),
        (
            "meterline:cells",
            '[{"name": "home-aws-x", "stack": "s"}]',
            "meterline:cells[0].name must be a cell's",
        ),
        (
            "meterline:cells",
            '[{"name": "gcp-us-central1", "identity": {"principalId": "p"}}]',
            "meterline:cells[0].identity.serviceAccountUniqueId must be a non-empty string",
        ),
        (
            "meterline:cells",
            '[{"name": "azure-eastus", "stack": "azure-eastus"}]',
            "meterline:cells[0].tenantId",
        ),
        (
            "meterline:network",
            '{"cidr": "10.0.0.0/16"}',
            "unknown key meterline:network (a billing home's stack)",
        ),
    ],
)
def test_a_bad_home_config_fails_naming_the_stack_and_key(key: str, value: str, message: str) -> None:
    raw = {**read_stack_file(HOME), key: value}
    with pytest.raises(ConfigError, match=f"^stack {HOME}: ") as error:
        load_stack_config(HOME, raw)
    assert message in str(error.value)


def test_a_cell_names_its_home_by_stack_or_by_bucket_region_and_role() -> None:
    raw = read_stack_file("aws-us-east-1")
    given = {
        **raw,
        "meterline:home": json.dumps(
            {"bucket": "b", "region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/r"}
        ),
    }
    link = load_stack_config("aws-us-east-1", given).home
    assert link is not None and (link.bucket, link.region, link.role_arn, link.stack) == (
        "b",
        "us-east-1",
        "arn:aws:iam::123456789012:role/r",
        None,
    )
    without = {k: v for k, v in raw.items() if k != "meterline:home"}
    assert load_stack_config("aws-us-east-1", without).home is None  # the first pass: publish paused
    bad = {**raw, "meterline:home": json.dumps({"bucket": "b", "region": "r", "roleArn": "role/r"})}
    with pytest.raises(ConfigError, match=r"meterline:home\.roleArn is not an IAM role ARN"):
        load_stack_config("aws-us-east-1", bad)
