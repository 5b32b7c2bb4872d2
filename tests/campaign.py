"""Shared by the reliability campaigns (tests/test_reliability_*.py): size setting, secret scans, figures.

The campaigns run a fast setting by default (what CI runs). ``NERSEMBLE_CAMPAIGN=long`` runs the long
setting; its figures go to docs/reliability.md. Every campaign reports its figures through ``report``:
one line on stdout (shown with ``pytest -s``) and, when ``NERSEMBLE_CAMPAIGN_REPORT`` names a file, one
JSON line appended to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import zarr

CAMPAIGN_ENV = "NERSEMBLE_CAMPAIGN"
REPORT_ENV = "NERSEMBLE_CAMPAIGN_REPORT"


def long_campaign() -> bool:
    """True when the long setting was asked for (``NERSEMBLE_CAMPAIGN=long``)."""
    return os.environ.get(CAMPAIGN_ENV, "fast").strip().lower() == "long"


def campaign_size(fast: int, long: int) -> int:
    """How many runs a campaign makes in the current setting."""
    return long if long_campaign() else fast


def report(campaign: str, **figures) -> None:
    """Print a campaign's figures as one line and append them to the report file, if one is set."""
    record = {"campaign": campaign, "setting": "long" if long_campaign() else "fast", **figures}
    print(f"\n[campaign] {json.dumps(record, sort_keys=True)}")
    target = os.environ.get(REPORT_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def store_attributes(store: Path | str) -> dict[str, dict]:
    """The attributes of every group and array of a store, keyed by path ('' is the root)."""
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    found = {"": dict(root.attrs)}
    found.update({path: dict(node.attrs) for path, node in root.members(max_depth=None)})
    return found


def metadata_text(store: Path | str) -> str:
    """Every metadata document of a local store (zarr.json files), concatenated: what a secret scan reads."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(Path(store).rglob("zarr.json")))


def assert_secret_absent(secret: str, **texts: str) -> None:
    """Fail naming the first text (by keyword) that contains ``secret``."""
    assert len(secret) >= 16, "a secret this short would match by chance"
    leaking = [name for name, text in texts.items() if secret in text]
    assert not leaking, f"the access URL's secret appears in: {', '.join(leaking)}"
