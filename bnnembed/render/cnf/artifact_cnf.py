"""The CNF export of an artifact: its bounds' DIMACS files and their variable map ``cnf.json``.

:func:`write_cnf` (the end of ``bnnembed build``, or ``bnnembed cnf DIR``) encodes both bounds of
the model, writes ``cnf_upper.cnf`` / ``cnf_lower.cnf`` (DIMACS) and ``cnf.json`` (the variable
map: input bit -> feature and threshold, neuron outputs, decision literal) into the artifact's
workspace, for external solvers and independent checks; :func:`read_cnf_meta` reads the map back,
checking it belongs to the model. The explainer does not need these files: it encodes the same
clauses from the model in memory.
"""

from __future__ import annotations

import json
import os

from ...errors import BnnError
from ...model.encoding import Thermometer
from .bound import BoundCnf, encode_bound
from .dimacs import write_dimacs
from .encodings import DEFAULT_ENCODING, CardEncoding

CNF_JSON = "cnf.json"
CNF_FORMAT = "bnnembed-cnf"
CNF_FORMAT_VERSION = 1


def _bound_name(answer: str) -> str:
    """The bound's name: ``upper`` if it answers "yes", ``lower`` if it answers "no"."""
    return "upper" if answer == "yes" else "lower"


def cnf_file_name(answer: str) -> str:
    """DIMACS file of a bound inside an artifact (``answer`` is "yes" for upper, "no" for lower)."""
    return f"cnf_{_bound_name(answer)}.cnf"


def variable_map(cnf: BoundCnf, encoder: Thermometer, feature_names: list[str]) -> dict:
    """JSON-able meaning of the variables of a bound's CNF."""
    owner = encoder.bit_owner()
    inputs = []
    for b in range(cnf.n_bits):
        f = int(owner[b])
        col = int(encoder.feature_index[f])
        inputs.append({
            "bit": b,
            "var": int(cnf.x_vars[b]),
            "feature": feature_names[col] if col < len(feature_names) else f"x{col}",
            "column": col,
            "kept_feature": f,
            "rank": b - int(encoder.offsets[f]),
            "threshold": float(encoder.thresholds[b]),
            "meaning": "feature >= threshold",
        })
    return {
        "answer": cnf.answer,
        "encoding": cnf.encoding.value,
        "n_vars": cnf.n_vars,
        "n_clauses": cnf.n_clauses,
        "decision": cnf.decision,
        "inputs": inputs,
        "neurons": [[int(v) for v in layer] for layer in cnf.h_vars],
    }


def cnf_path(artifact_dir: str, name: str, create: bool = False) -> str:
    """Where an artifact's CNF export file lives (its workspace; an older artifact's own copy)."""
    from ...artifact import workspace_path

    return workspace_path(artifact_dir, name, create)


def write_cnf(artifact_dir: str, encoding: CardEncoding | str = DEFAULT_ENCODING, model=None) -> dict:
    """Write both bounds' DIMACS files and ``cnf.json`` into the artifact's workspace.

    Returns the JSON variable map. ``model`` (the artifact's :class:`~bnnembed.model.model.Model`)
    saves reloading the artifact when the caller has it.
    """
    if model is None:
        from ...artifact import load_artifact

        model = load_artifact(artifact_dir).model
    art = model
    encoding = CardEncoding(encoding)
    meta = {"format": CNF_FORMAT, "format_version": CNF_FORMAT_VERSION,
            "model_hash": art.model_hash, "encoding": encoding.value, "bounds": {}}
    for net in (art.upper, art.lower):
        cnf = encode_bound(net, art.encoder, encoding)
        fname = cnf_file_name(net.answer)
        write_dimacs(cnf, cnf_path(artifact_dir, fname, create=True), comments=[
            f"bnnembed CNF of the {_bound_name(net.answer)} bound "
            f"(answers {net.answer!r} iff literal {cnf.decision} is true)",
            f"model_hash {art.model_hash} encoding {encoding.value} shape {net.shape}",
            f"variables 1..{cnf.n_bits} are the thermometer input bits (see {CNF_JSON})",
        ])
        vm = variable_map(cnf, art.encoder, art.feature_names)
        vm["file"] = fname
        vm["n_synapses"] = net.n_synapses()
        meta["bounds"][_bound_name(net.answer)] = vm
    with open(cnf_path(artifact_dir, CNF_JSON, create=True), "w") as fh:
        json.dump(meta, fh)
        fh.write("\n")
    return meta


def read_cnf_meta(artifact_dir: str, model_hash: str | None = None) -> dict:
    """The artifact's ``cnf.json``, or a one-line error telling how to create it."""
    path = cnf_path(artifact_dir, CNF_JSON)
    if not os.path.exists(path):
        raise BnnError(f"{artifact_dir}: the artifact has no CNF; create it with 'bnnembed cnf {artifact_dir}'")
    with open(path) as fh:
        meta = json.load(fh)
    if meta.get("format") != CNF_FORMAT:
        raise BnnError(f"{path}: not a bnnembed CNF map; regenerate it with 'bnnembed cnf {artifact_dir}'")
    if model_hash is not None and meta.get("model_hash") != model_hash:
        raise BnnError(f"{path}: CNF belongs to another model; regenerate it with 'bnnembed cnf {artifact_dir}'")
    return meta
