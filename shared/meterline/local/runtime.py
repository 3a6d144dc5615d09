"""The Lambda runtime, locally: the real handler modules, loaded the way Lambda loads them, each
handed the jobs the composition root builds from the cell's settings (``bootstrap``), and one
invocation at a time.

One at a time because the handlers keep per-container state in module globals (Powertools'
metric set is even shared by every ``Metrics`` in a process); on AWS each concurrent invocation
has a container of its own.
"""

from __future__ import annotations

import gc
import importlib.util
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from meterline.bootstrap import Jobs

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

FUNCTIONS_ROOT = Path(__file__).resolve().parents[3] / "functions"


def load_handler(job: str, root: Path = FUNCTIONS_ROOT) -> ModuleType:
    return load_function(root / job / "aws.py", f"meterline_local_{job}_aws", f"the {job} handler")


def load_function(path: Path, name: str, what: str) -> ModuleType:
    """A function's module loaded from its file, under ``name``, as the cloud's runtime loads it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} is missing (run from a checkout of meterline)")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def function_arn(job: str) -> str:
    return f"arn:aws:lambda:local:000000000000:function:meterline-{job}"


def retries_exhausted(job: str, invokes: int) -> dict[str, Any]:
    """The ``requestContext`` of what Lambda sends an on-failure destination for a batch it gave up on."""
    return {
        "functionArn": function_arn(job),
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": invokes,
    }


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class Invocations:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0


@contextmanager
def counted(stats: Invocations, lock: AbstractContextManager[Any]) -> Iterator[None]:
    """One invocation, timed and counted in ``stats`` (an error if it raised) under ``lock``."""
    started = time.perf_counter()
    failed = False
    try:
        yield
    except Exception:
        failed = True
        raise
    finally:
        with lock:
            stats.count += 1
            stats.errors += failed
            stats.seconds += time.perf_counter() - started


class Runtime:
    """The functions of one cell. ``invoke`` raises what the handler raised, as Lambda reports it."""

    def __init__(self, jobs: Mapping[str, int], wire: Callable[[], Jobs]) -> None:
        """``jobs`` maps each job to its memory size in MB; ``wire()`` builds a container's jobs."""
        self._warning_filters = warnings.filters[:]
        # Powertools warns when a batch flushed its metrics midway (every 100 values) and has none left
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
        self.modules = {job: load_handler(job) for job in jobs}
        for module in self.modules.values():
            module.jobs.use(wire())
        self.handlers: dict[str, Handler] = {job: module.handler for job, module in self.modules.items()}
        self.memory = dict(jobs)
        self.stats: dict[str, Invocations] = {job: Invocations() for job in jobs}
        self._lock = threading.Lock()
        self._requests = 0

    def invoke(self, job: str, event: dict[str, Any], timeout_seconds: int = 900) -> dict[str, Any]:
        with self._lock:
            self._requests += 1
            context = LambdaContext(
                function_name=f"meterline-{job}",
                aws_request_id=f"local-{self._requests:08d}",
                memory_limit_in_mb=self.memory[job],
                invoked_function_arn=function_arn(job),
                log_group_name=f"/aws/lambda/meterline-{job}",
                deadline=time.monotonic() + timeout_seconds,
            )
            with counted(self.stats[job], nullcontext()):  # already under the lock
                return self.handlers[job](event, context)

    def shutdown(self) -> None:
        """Let go of the containers: their cached clients (Kafka producers among them) close now,
        while the servers still run, not at exit against a stopped broker."""
        for module in self.modules.values():
            module.jobs.release()
        self.modules.clear()
        self.handlers.clear()
        gc.collect()
        warnings.filters[:] = self._warning_filters  # type: ignore[index]
