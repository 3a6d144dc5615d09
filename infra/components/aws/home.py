"""The billing home on AWS (SPEC §8), composed from its components; returns the stack's outputs.

Its ledgers are the cell's Ledgers component over `HOME_TABLES`; the statements bucket, the trust
of each cell, the functions and the operations are its own.
"""

from __future__ import annotations

from typing import Any

from infra.components.aws.home_functions import HomeFunctions, HomeFunctionsArgs
from infra.components.aws.home_operations import HomeOperations, HomeOperationsArgs
from infra.components.aws.ledgers import Ledgers, LedgersArgs
from infra.components.aws.statements import Statements, StatementsArgs
from infra.components.aws.trust import CellTrust, CellTrustArgs
from infra.components.home_link import statements_bucket_name, statements_role_name
from infra.config import StackConfig
from infra.outputs import cost_inputs
from infra.packaging import BUILD_DIR, build_packages, offline_build
from meterline.topology import HOME_FUNCTIONS, HOME_TABLES, HOME_TOPICS


def aws_home(config: StackConfig) -> dict[str, Any]:
    settings = config.home_settings
    assert settings is not None
    home, tags = config.cell, config.resource_tags()
    packages = build_packages(
        [function.job for function in HOME_FUNCTIONS],
        config.catalog,
        BUILD_DIR / config.stack,
        offline=offline_build(),
    )
    ledgers = Ledgers(
        "ledgers", LedgersArgs(home, config.region, HOME_TABLES, tags, f"{config.unique(home)}-")
    )
    statements = Statements(
        "statements",
        StatementsArgs(home, config.region, statements_bucket_name(config), len(settings.cells), tags),
    )
    trust = CellTrust(
        "trust",
        CellTrustArgs(
            home=home,
            region=config.region,
            cells=settings.cells,
            bucket_arn=statements.bucket_arn,
            key_arn=statements.key_arn,
            role_names={cell.name: statements_role_name(config, cell.name) for cell in settings.cells},
            tags=tags,
        ),
    )
    functions = HomeFunctions(
        "functions",
        HomeFunctionsArgs(
            home=home,
            region=config.region,
            functions=HOME_FUNCTIONS,
            topics=HOME_TOPICS,
            packages=packages,
            ledgers=ledgers,
            statements=statements,
            cells=[cell.name for cell in settings.cells],
            log_retention_days=config.log_retention_days,
            tags=tags,
        ),
    )
    operations = HomeOperations(
        "operations", HomeOperationsArgs(home, config.region, ledgers, statements, functions, tags)
    )
    return {
        # what each cell reads of its home (infra/components/home_link.py)
        "statements": {"bucket": statements.bucket_name, "region": config.region},
        "cell_roles": trust.roles,
        "tables": {name: {"name": ledger.name, "arn": ledger.arn} for name, ledger in ledgers.tables.items()},
        "functions": {job: {"name": f.name, "arn": f.arn} for job, f in functions.functions.items()},
        "notification_topics": functions.notification_topics,
        "alarm_topic_arn": operations.alarm_topic_arn,
        "dashboard": operations.dashboard_name,
        "cost_inputs": cost_inputs(config, (), [ledgers, statements, functions, operations]),
    }
