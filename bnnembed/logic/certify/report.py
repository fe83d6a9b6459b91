"""The certified share next to the statistical figures: ``certification.json`` in the artifact's
workspace (what ``certify`` found; artifacts certified before the workspace keep a
``certification`` block in metrics.json, which is read the same way)."""

from __future__ import annotations

import json
import os

from ...artifact import workspace_path

CERTIFICATION = "certification.json"


def certification_block(art) -> dict | None:
    """The last ``certify`` results recorded for an artifact (None if never certified)."""
    path = workspace_path(art.path, CERTIFICATION)
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    return art.metrics.get("certification")


def update_metrics_certification(artifact_dir: str, summary: dict) -> dict:
    """Merge ``summary`` into the workspace's ``certification.json`` (the artifact is not touched).

    ``summary`` holds any of ``explanations`` (totals of :func:`.explanations.summarize`) and
    ``domain`` (per bound, :meth:`.domain.DomainResult.to_dict` without the round log). Returns
    the new block.
    """
    path = workspace_path(artifact_dir, CERTIFICATION, create=True)
    block = {}
    if os.path.exists(path):
        with open(path) as fh:
            block = json.load(fh)
    block.update(summary)
    with open(path, "w") as fh:
        json.dump(block, fh, indent=2)
        fh.write("\n")
    return block


def certification_lines(block: dict | None) -> list[str]:
    """The certified share, for the eval table (empty when ``certify`` has not been run)."""
    if not block:
        return []
    lines = []
    e = block.get("explanations")
    if e and e.get("decided"):
        d = e["decided"]
        dom = e.get("explanation_domain") or {"kind": "box"}
        where = (f"delta {dom['delta']:g}" if dom.get("kind") == "delta" else
                 f"radius {dom['radius']}" if dom.get("kind") == "radius" else "whole box")
        pin = e.get("pin") or "cell"  # results recorded before the pin existed held features in cells
        tail = (f"features pinned at the input's values, {where}" if pin == "value" else
                f"features pinned to the input's cells, {where}; ceiling {e.get('cell_certified', '-')} rows")
        lines.append(f"certified explanations (last 'certify'): {e['certified']} of {d} decided rows "
                     f"({e['certified'] / d:.1%}), {e.get('certified_after_extension', e['certified'])} after "
                     f"pinning more features; {tail}")
    for name, r in (block.get("domain") or {}).items():
        cov = "-" if r.get("coverage_after") is None else f"{r['coverage_after']:.1%}"
        verdict = ("sound as calibrated" if r.get("sound_as_is") else
                   f"sound from tau={r['tau_certified']} (coverage {cov})" if r.get("certified") else "not certified")
        lines.append(f"whole domain, {name} bound: {verdict}")
    return lines
