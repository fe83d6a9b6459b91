"""The certified share next to the statistical figures: the ``certification`` block of metrics.json."""

from __future__ import annotations

import json
import os

from ..artifact import METRICS, update_metrics


def update_metrics_certification(artifact_dir: str, summary: dict) -> dict:
    """Merge ``summary`` into ``metrics.json["certification"]`` and re-register the file's hash.

    ``summary`` holds any of ``explanations`` (totals of :func:`.explanations.summarize`) and
    ``domain`` (per bound, :meth:`.domain.DomainResult.to_dict` without the round log). Returns
    the new block.
    """
    path = os.path.join(artifact_dir, METRICS)
    with open(path) as fh:
        block = dict(json.load(fh).get("certification") or {})
    block.update(summary)
    update_metrics(artifact_dir, "certification", block)
    return block
