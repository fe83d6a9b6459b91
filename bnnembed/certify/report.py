"""The certified share next to the statistical figures: the ``certification`` block of metrics.json."""

from __future__ import annotations

import json
import os

from ..artifact import METRICS, register_files


def update_metrics_certification(artifact_dir: str, summary: dict) -> dict:
    """Merge ``summary`` into ``metrics.json["certification"]`` and re-register the file's hash.

    ``summary`` holds any of ``explanations`` (totals of :func:`.explanations.summarize`) and
    ``domain`` (per bound, :meth:`.domain.DomainResult.to_dict` without the round log). Returns
    the new block.
    """
    path = os.path.join(artifact_dir, METRICS)
    metrics = {}
    if os.path.exists(path):
        with open(path) as fh:
            metrics = json.load(fh)
    block = dict(metrics.get("certification") or {})
    block.update(summary)
    metrics["certification"] = block
    with open(path, "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    register_files(artifact_dir, METRICS)
    return block
