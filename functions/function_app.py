"""The Azure Function App's root: the Flex Consumption app loads this one module, which registers
each job's blueprint from ``<job>/azure.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import azure.functions as func

HERE = Path(__file__).parent
JOBS = ("meter", "aggregate", "publish", "rate", "close")

app = func.FunctionApp()


def _blueprint(job: str) -> func.Blueprint:
    # By path: the job folders are not packages, and "<job>.azure" would shadow the azure SDK.
    spec = importlib.util.spec_from_file_location(f"meterline_{job}_azure", HERE / job / "azure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    blueprint: func.Blueprint = module.blueprint
    return blueprint


for job in JOBS:
    app.register_functions(_blueprint(job))
