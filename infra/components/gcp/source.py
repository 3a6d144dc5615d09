"""Source archives of a GCP cell's Cloud Run functions: `main.py` (the job's `functions/<job>/gcp.py`),
the core modules it can import (its import closure), the stack's catalog and a `requirements.txt`
that Cloud Build installs: the core's dependencies, the [gcp] extra and the Kafka client, read from
pyproject.toml.

Deterministic like the Lambda zips (infra/packaging.py), so an unchanged function does not redeploy.
A job whose GCP handler is not written yet still gets an archive (no core), so a preview works.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from infra.packaging import (
    CATALOG_NAME,
    FUNCTIONS_DIR,
    core_entries,
    runtime_requirements,
    write_zip,
)

ENTRY_POINT = "handler"


def source_archive(job: str, catalog: Path, out_dir: Path) -> tuple[Path, str]:
    """(`<out_dir>/<job>.zip`, its SHA-256 prefix for a content-addressed object name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    requirements = ("\n".join(runtime_requirements("gcp")) + "\n").encode()
    handler = FUNCTIONS_DIR / job / "gcp.py"
    entries: list[tuple[str, Path | bytes]] = [*core_entries(handler)]
    if handler.is_file():
        entries.append(("main.py", handler))
    entries += [(CATALOG_NAME, catalog), ("requirements.txt", requirements)]
    archive = out_dir / f"{job}.zip"
    write_zip(archive, entries)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
