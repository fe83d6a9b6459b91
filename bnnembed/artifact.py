"""The artifact directory: everything a later stage (codegen, explain, host) needs, no pickle.

Layout (documented in docs/artifact.md)::

    manifest.json   format name and version, generator version, features, encoding summary,
                    positive class, DNN description, SHA-256 of every file below
    bounds.npz      thermometer encoding + the two integer bounds (uint32 / int32 / float32 arrays)
    dnn.onnx        the DNN (or dnn.pt for TorchScript)
    metrics.json    test-split metrics, calibration record, baseline comparison
    dnn.export.onnx the TorchScript DNN exported to ONNX for 'certify' (when the export works)
    workspace/      not part of the artifact: decision log, explanation store, certification
                    results, CNF exports (see :func:`workspace_path`)
    split.npz       row indices of the train / calibration / test split (for the built-in data)

Loading checks the format name, refuses a newer format version, and verifies every hash, so a
corrupted or hand-edited artifact is refused with a one-line message instead of being misread.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .model.encoding import Thermometer
from .errors import ArtifactError
from .model.intmodel import BoundNet
from .model.model import Model, has_masks
from .model.shifts import ShiftCopies

FORMAT = "bnnembed-artifact"
FORMAT_VERSION = 5  # the newest format read: 2: dnn.output is a convention name, dnn.input_shape,
#                     settings; 3: bounds.npz may hold masked layers (<p>l<i>_mask); 4: the lower
#                     bound may take its hidden layers from the upper (lower_shared_layers);
#                     5: the bounds decide over shifted copies of the image (copies_*)
ONE_NETWORK_FORMAT_VERSION = 4  # what one network without copies is written as
MASKED_FORMAT_VERSION = 3  # what a pair with masked layers is written as (readers of 3 load it)
DENSE_FORMAT_VERSION = 2  # what a pair without masks is written as (readers of 2 load it)
MANIFEST = "manifest.json"
BOUNDS = "bounds.npz"
METRICS = "metrics.json"
SPLIT = "split.npz"
ONNX_EXPORT = "dnn.export.onnx"  # a TorchScript DNN exported at build time, for 'certify'
WORKSPACE = "workspace"  # what later commands compute from and about the artifact; never hashed


def workspace_path(artifact_dir: str, name: str, create: bool = False) -> str:
    """``DIR/workspace/NAME``: the decision log, the explanation store, certification results and
    CNF exports live there, apart from the hashed, deployed artifact (safe to delete: each is
    rebuilt or re-run on demand). An older artifact that keeps the file beside its manifest
    goes on using it. ``create`` makes the folder (for writers)."""
    legacy = os.path.join(artifact_dir, name)
    new = os.path.join(artifact_dir, WORKSPACE, name)
    if os.path.exists(legacy) and not os.path.exists(new):
        return legacy
    if create:
        os.makedirs(os.path.dirname(new), exist_ok=True)
    return new


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Artifact:
    """A loaded, verified artifact."""

    path: str
    manifest: dict
    encoder: Thermometer
    upper: BoundNet
    lower: BoundNet
    metrics: dict = field(default_factory=dict)
    copies: ShiftCopies | None = None  # what the device runs k times (encoder, upper, lower expand it)

    @property
    def model(self) -> Model:
        """The deployed thing as one frozen value (what every renderer takes)."""
        cached = self.__dict__.get("_model")
        if cached is None or cached.encoder is not self.encoder or cached.upper is not self.upper \
                or cached.lower is not self.lower or cached.copies is not self.copies:
            cached = Model(self.encoder, self.upper, self.lower, tuple(self.feature_names),
                           tuple(self.manifest.get("positive", {}).get("values", ())), copies=self.copies)
            self.__dict__["_model"] = cached
        return cached

    @property
    def device_parts(self) -> tuple[Thermometer, BoundNet, BoundNet]:
        """:attr:`Model.device_parts <bnnembed.model.model.Model.device_parts>`: what the device stores."""
        return self.model.device_parts

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["features"]["names"])

    @property
    def native_input(self) -> str:
        """``uint8`` if every value the build saw was a whole number 0..255 (the device can decide
        and defer such rows as bytes: bnn_decide_u8(), bnn_link_defer_u8()), else ``float32``
        (also for artifacts written before the key existed)."""
        return self.manifest["features"].get("native", "float32")

    @property
    def model_hash(self) -> str:
        return self.manifest["model_hash"]

    @property
    def positive(self) -> tuple:
        return tuple(self.manifest["positive"]["values"])

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def encode(self, X: np.ndarray) -> np.ndarray:
        return self.encoder.encode(X)

    def decide(self, X: np.ndarray) -> np.ndarray:
        """Decisions (:class:`~bnnembed.model.intmodel.Decision` codes) for raw inputs (see
        :meth:`~bnnembed.model.model.Model.decide`: a non-finite feature makes a row INVALID)."""
        return self.model.decide(X)

    @property
    def dnn_output(self) -> str:
        """The DNN's output convention (:class:`~bnnembed.learn.dnn.Output`) the build recorded."""
        from .learn.dnn import Output

        d = self.manifest["dnn"]
        if d.get("output") in Output.ALL:
            return d["output"]
        # format 1 recorded a sentence: one logit, or class scores with positive columns
        return Output.CLASSES if d.get("positive_columns") else Output.LOGIT

    def load_dnn(self):
        """The artifact's DNN, with the output convention and positive columns the build
        recorded: what "yes" means is never asked again."""
        from .learn.dnn import load_dnn

        d = self.manifest["dnn"]
        shape = d.get("input_shape")
        return load_dnn(self.file(d["file"]), self.encoder.n_features, output=self.dnn_output,
                        positive_columns=tuple(d.get("positive_columns") or ()),
                        input_shape=tuple(shape) if shape else None)

    def certify_onnx(self) -> str:
        """The ONNX graph 'certify' verifies: the DNN itself, or the export of a TorchScript DNN
        made at build time (the TorchScript DNN still answers and replays counterexamples)."""
        from .errors import BnnError

        d = self.manifest["dnn"]
        if d["file"].endswith(".onnx"):
            return self.file(d["file"])
        if d.get("onnx_export"):
            return self.file(d["onnx_export"])
        raise BnnError(f"{self.path}: certification needs an ONNX DNN and this TorchScript DNN could not be "
                       "exported at build time; export it with torch.onnx.export and rebuild with --dnn FILE.onnx")

    def load_rows(self, source: str, *, label: str = "label", positive: str | None = None):
        """Rows for this artifact: columns checked, labels (if any) read with the artifact's
        positive set (see :func:`~bnnembed.learn.data.load_rows`)."""
        from .learn.data import load_rows

        return load_rows(source, self.feature_names, self.positive, label=label, positive=positive)


def write_artifact(path: str, manifest: dict, encoder: Thermometer, upper: BoundNet,
                   lower: BoundNet, copies: ShiftCopies | None = None) -> None:
    """Write bounds.npz and a manifest that hashes every file already in the directory.

    The manifest names the oldest format that holds the model: 5 for a decision over shifted
    copies, 4 for one network read both ways (its lower bound stores only its output layer), else
    3 when a bound has a masked layer, else 2.
    A reader of an older format would misread the newer layout, so it refuses the artifact
    ("newer than this bnnembed reads"); a dense pair stays format 2, readable by every release that
    reads format 2."""
    os.makedirs(path, exist_ok=True)
    model = Model(encoder, upper, lower, copies=copies)
    with open(os.path.join(path, BOUNDS), "wb") as fh:
        fh.write(model.to_npz_bytes())
    manifest = dict(manifest)
    version = (FORMAT_VERSION if copies is not None else ONE_NETWORK_FORMAT_VERSION if model.one_network
               else MASKED_FORMAT_VERSION if has_masks(upper, lower) else DENSE_FORMAT_VERSION)
    manifest.update(format=FORMAT, format_version=version, generator=f"bnnembed {__version__}")
    manifest["model_hash"] = sha256_file(os.path.join(path, BOUNDS))[:16]
    manifest.setdefault("files", {})
    manifest["files"][BOUNDS] = None
    write_manifest(path, manifest)


def write_manifest(path: str, manifest: dict) -> None:
    """(Re)hash the files the manifest lists and write it."""
    files = manifest.setdefault("files", {})
    for name in list(files):
        files[name] = sha256_file(os.path.join(path, name))
    with open(os.path.join(path, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")


def read_manifest(path: str) -> dict:
    mpath = os.path.join(path, MANIFEST)
    if not os.path.isdir(path):
        raise ArtifactError(f"{path}: no such artifact directory; create one with 'bnnembed build'")
    if not os.path.exists(mpath):
        raise ArtifactError(f"{path}: no {MANIFEST}; not a bnnembed artifact (rebuild with 'bnnembed build')")
    try:
        with open(mpath) as fh:
            manifest = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{mpath}: corrupted manifest ({exc.msg if hasattr(exc, 'msg') else exc}); rebuild the artifact") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{mpath}: not a bnnembed artifact manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArtifactError(f"{mpath}: format_version {version!r} is missing or invalid; rebuild the artifact")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {version} is newer than this bnnembed reads ({FORMAT_VERSION}); "
            "upgrade bnnembed"
        )
    return manifest


def load_artifact(path: str) -> Artifact:
    """Load and verify an artifact directory (format, version, every file hash)."""
    manifest = read_manifest(path)
    for name, digest in manifest.get("files", {}).items():
        fpath = os.path.join(path, name)
        if not os.path.exists(fpath):
            raise ArtifactError(f"{path}: {name} is missing; rebuild the artifact with 'bnnembed build'")
        if sha256_file(fpath) != digest:
            raise ArtifactError(
                f"{path}: {name} does not match its hash in {MANIFEST} (corrupted or edited); "
                "rebuild the artifact with 'bnnembed build'"
            )
    try:
        with np.load(os.path.join(path, BOUNDS), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        model = Model.from_arrays(arrays, manifest.get("features", {}).get("names", ()),
                                  manifest.get("positive", {}).get("values", ()))
    except (KeyError, ValueError, OSError) as exc:
        raise ArtifactError(f"{path}: {BOUNDS} is unreadable ({exc}); rebuild the artifact") from None
    metrics = {}
    mpath = os.path.join(path, METRICS)
    if os.path.exists(mpath):
        with open(mpath) as fh:
            metrics = json.load(fh)
    art = Artifact(path, manifest, model.encoder, model.upper, model.lower, metrics, model.copies)
    art.__dict__["_model"] = model
    return art
