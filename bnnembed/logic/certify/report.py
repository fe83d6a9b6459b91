"""The certified share next to the statistical figures: the ``certification`` block of metrics.json."""

from __future__ import annotations

import json
import os

from ...artifact import METRICS, update_metrics


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


def certification_lines(block: dict | None) -> list[str]:
    """The certified share, for the eval table (empty when ``certify`` has not been run)."""
    if not block:
        return []
    lines = []
    e = block.get("explanations")
    if e and e.get("decided"):
        d = e["decided"]
        lines.append(f"certified explanations (last 'certify'): {e['certified']} of {d} decided rows "
                     f"({e['certified'] / d:.1%}), {e.get('certified_after_extension', e['certified'])} after "
                     f"pinning more features; ceiling {e.get('cell_certified', '-')} rows")
    for name, r in (block.get("domain") or {}).items():
        cov = "-" if r.get("coverage_after") is None else f"{r['coverage_after']:.1%}"
        verdict = ("sound as calibrated" if r.get("sound_as_is") else
                   f"sound from tau={r['tau_certified']} (coverage {cov})" if r.get("certified") else "not certified")
        lines.append(f"whole domain, {name} bound: {verdict}")
    return lines
