"""`bnnembed build`, `eval`, `predict` and `demo`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from ..errors import BnnError
from ..learn.config import DESIGNS
from .args import count, fraction, image_shape, out_dir, out_file, widths


def add_data_args(p: argparse.ArgumentParser, positive_help: str = "label value(s) that mean yes") -> None:
    p.add_argument("--data", required=True, metavar="SRC",
                   help="breast_cancer, digits, mnist:DIR, FILE.csv or FILE.npz")
    p.add_argument("--label", default="label", metavar="COL", help="label column of a CSV (default: label)")
    p.add_argument("--positive", default=None, metavar="V[,V...]", help=positive_help)


ROWS_POSITIVE_HELP = ("only for labelled rows of another labelling (say 0/1): the label value(s) that mean "
                      "yes, for accuracy figures. The artifact records what yes means; a value that "
                      "contradicts it is refused")


def add_rows_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--data/--label/--positive of the commands that use a built artifact: labels optional."""
    p.add_argument("--data", required=required, metavar="SRC",
                   help="rows to use: breast_cancer, digits, mnist:DIR, FILE.csv or FILE.npz; labels are optional "
                        "(a CSV of only the feature columns, an NPZ without y)")
    p.add_argument("--label", default="label", metavar="COL", help="label column of a CSV, if any (default: label)")
    p.add_argument("--positive", default=None, metavar="V[,V...]", help=ROWS_POSITIVE_HELP)


def load_rows(args, art):
    """The rows of ``--data`` for artifact ``art`` (columns checked, labels optional)."""
    return art.load_rows(args.data, label=args.label or "label", positive=args.positive)


def feature_count(text: str) -> float:
    """``--features``: a whole number of features (>= 1), or a fraction in (0, 1) of the columns."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < v < 1 or (v >= 1 and v == int(v))):
        raise argparse.ArgumentTypeError(f"{text}: give a whole number of features (>= 1) or a fraction in (0, 1)")
    return int(v) if v >= 1 else v


def register(sub) -> None:
    p = sub.add_parser(
        "build", help="train, fold and calibrate the two bounds of a DNN into an artifact",
        description="Split the data (train / calibration / test), train or load the DNN, train the upper "
        "(yes/unknown) and lower (no/unknown) binarized bounds on the DNN's decisions, fold them into "
        "integer models, calibrate their thresholds with a Clopper-Pearson guarantee, and write the "
        "artifact directory with metrics.json and risk-coverage plots.",
    )
    add_data_args(p, "label value(s) that mean yes, e.g. 1 or 5,6,7,8,9 (built-in default: malignant / 0)")
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="artifact directory to write")
    p.add_argument("--dnn", default=None, metavar="PATH",
                   help="the DNN: .onnx or TorchScript .pt (default: train a small MLP and store it as ONNX)")
    p.add_argument("--alpha", type=fraction, default=0.05, help="target disagreement rate (default 0.05)")
    p.add_argument("--delta", type=fraction, default=0.05, help="1 - confidence of the bound (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default 0)")
    p.add_argument("--bits-per-feature", type=count(1), default=None, metavar="K",
                   help="thermometer bits per feature (default: about 256 input bits in all, 2..8 per feature)")
    p.add_argument("--design", choices=DESIGNS, default=None,
                   help="pair: two networks, one trained to answer yes and one to answer no; one: one network read "
                        "both ways (its hidden layers stored and run once, each side its own calibrated threshold): "
                        "half the flash and work of a pair of the same widths. One network covered more on images, "
                        "the pair on tables, so the default is one for images and pair for tables (docs/coverage.md)")
    p.add_argument("--image-shape", type=image_shape, default=None, metavar="HxW",
                   help="the rows are images of H rows by W columns, row-major (a CSV or NPZ of pixels): image "
                        "augmentation, the one-network default, --shift-copies and explanation overlays "
                        "(explain --png) then apply. mnist: and digits know their shape")
    p.add_argument("--shift-copies", type=int, choices=(1, 3, 5), default=1, metavar="K",
                   help="images only: decide from each bound's score summed over K copies of the image, moved one "
                        "pixel left and right (3), and up and down (5), calibrated like one score. Covers more "
                        "(MNIST 5..9 at 1%%: 93.8%% -> 95.5%% with 3) at the same flash, for K times the device's "
                        "work and slower, larger explanations (docs/coverage.md). Default 1")
    p.add_argument("--hidden", type=widths, default=None, metavar="W,W",
                   help="hidden binary layer widths (default: 64,32 up to 512 input bits, else 256,256, for both "
                        "designs; smaller bounds have much faster exact explanations)")
    p.add_argument("--flash-budget", type=count(1), default=None, metavar="BYTES",
                   help="choose the widest hidden layers whose model tables (both bounds and the encoder) fit "
                        "BYTES of flash; the runtime code adds about 1-3 KB (see docs/coverage.md; not with --hidden)")
    p.add_argument("--epochs", type=count(1), default=None, help="training epochs (default: from the data size)")
    p.add_argument("--features", type=feature_count, default=None, metavar="K",
                   help="the bounds read at most K input features (or a fraction like 0.5 of the columns), "
                        "chosen for both by a gate network trained on the DNN's decisions: explanations name "
                        "at most K features and are found faster, at some coverage (default: read all)")
    p.add_argument("--stability", type=float, default=0.0, metavar="W",
                   help="weight of a training penalty on hidden pre-activations near their threshold (neuron "
                        "stability; experimental, see docs/explanations.md; default 0 = none)")
    p.add_argument("--distill-margin", type=float, default=None, metavar="W",
                   help="margin distillation: the bounds also regress their logit onto the DNN's signed margin "
                        "(its logit, or best yes class score minus best other), weighted W, so they learn where the "
                        "DNN is sure, not only its side (default: 3 for images, 0 = the DNN's decisions only for tables; "
                        "see docs/coverage.md)")
    p.add_argument("--mask-first-layer", type=float, default=0.0, metavar="S",
                   help="mask the share S (0 <= S < 1) of the bounds' first-layer weights: a masked weight "
                        "means 'input bit not read' (the smallest magnitudes, masked progressively over the "
                        "first half of training; experimental; default 0 = dense)")
    p.add_argument("--augment", type=count(0), default=None, metavar="N",
                   help="distillation copies per training row labeled by the DNN (default: ~20k inputs in all)")
    p.add_argument("--domain-samples", type=count(0), default=0, metavar="N",
                   help="also distil on N points drawn uniformly from the training rows' feature box, so "
                        "the bounds stay right far from the data (for 'certify --domain'; default 0)")
    p.add_argument("--asymmetry", type=float, default=4.0,
                   help="cost of a wrong answer relative to a missed one in training a pair (default 4; one network "
                        "is trained symmetrically)")
    p.add_argument("--cal-fraction", type=fraction, default=0.25, help="calibration share of the rows (default 0.25)")
    p.add_argument("--test-fraction", type=fraction, default=0.25, help="test share of the rows (default 0.25)")
    p.add_argument("--dnn-output", choices=["logit", "probability", "classes"], default=None,
                   help="how to read the DNN's output: one logit (yes iff > 0), one probability (yes iff > 0.5) "
                        "or class scores (yes iff the argmax is a --positive class). Default: classes for "
                        "several columns; for one, probability if the graph ends in Sigmoid or every output "
                        "on the data is in [0, 1], else logit. Recorded in the artifact")
    p.add_argument("--no-baseline", action="store_true", help="skip the one-network baseline a pair is compared with")
    p.add_argument("--no-cnf", action="store_true",
                   help="skip exporting the bounds' CNF (DIMACS) into the workspace (explanations do not need it)")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of the table")
    p.set_defaults(func=run_build)

    p = sub.add_parser("eval", help="measure an artifact's bounds against its DNN on data",
                       description="Coverage, disagreements and their Clopper-Pearson bound on every row of SRC "
                       "(against the DNN: no labels needed; with labels, the DNN's accuracy too).")
    p.add_argument("artifact", metavar="DIR")
    add_rows_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)

    from ..predict import Engine

    p = sub.add_parser("predict", help="decide rows with the cascade (bounds, then the DNN for unknowns)",
                       description="Writes FILE.csv with columns row,bound,final,source: bound in yes/no/unknown, "
                       "final in yes/no, source bnn (a bound answered) or dnn (deferred to the DNN).")
    p.add_argument("artifact", metavar="DIR")
    add_rows_args(p)
    p.add_argument("--out", required=True, type=out_file, metavar="FILE.csv")
    p.add_argument("--engine", choices=Engine.ALL, default=Engine.NUMPY,
                   help="numpy reference, or the generated firmware under QEMU (default numpy)")
    p.add_argument("--machine", default="mps2-an386", help="QEMU machine for --engine qemu (default mps2-an386)")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("demo", help="run the main job end to end on built-in data",
                       description="build bounds -> report -> C -> QEMU run -> a deferred decision -> an explanation, "
                       "on the built-in digits data.")
    p.add_argument("--out", default="demo-out", type=out_dir, metavar="DIR", help="working directory (default demo-out)")
    p.add_argument("--data", default="digits", help="built-in data set (default digits)")
    p.add_argument("--positive", default="5,6,7,8,9",
                   help="label value(s) that mean yes (default 5,6,7,8,9: 'is the digit >= 5?')")
    p.add_argument("--quick", action="store_true", help="fewer epochs and distillation inputs (a smoke run)")
    p.add_argument("--machine", default="mps2-an386", help="QEMU machine for the firmware steps (default mps2-an386)")
    p.add_argument("--board", default="nucleo_f401re", help="board of the generated PlatformIO project")
    p.add_argument("--rows", type=count(1), default=300, help="rows run under QEMU (default 300)")
    p.set_defaults(func=run_demo)


def _load(args):
    from ..learn.data import load_data

    return load_data(args.data, label=args.label, positive=args.positive, require_labels=True)


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_table(m: dict, design: str = "pair") -> str:
    """Short human table of a build's metrics (the design's bounds; a pair beside its one-network
    baseline)."""
    from ..learn.bounds import design_label

    rows = [(design_label(design), m)]
    if m.get("baseline"):
        rows.append(("one network", m["baseline"]))
    head = f"{'variant':<14}{'coverage':>9}{'yes':>8}{'no':>8}{'decided':>9}{'disagree':>9}{'rate':>8}{'bound':>8}"
    lines = [head, "-" * len(head)]
    for name, r in rows:
        lines.append(f"{name:<14}{_pct(r['coverage']):>9}{_pct(r['coverage_yes']):>8}{_pct(r['coverage_no']):>8}"
                     f"{r['decided']:>9}{r['disagreements']:>9}{_pct(r['disagreement_rate']):>8}"
                     f"{_pct(r['disagreement_bound']):>8}")
    return "\n".join(lines)


def run_build(args) -> int:
    from ..learn.build import build_artifact
    from ..learn.config import BuildConfig

    ds = _load(args)
    if args.image_shape is not None:
        h, w = args.image_shape
        if h * w != ds.X.shape[1]:
            raise BnnError(f"--image-shape {h}x{w} holds {h * w} pixels but the rows have {ds.X.shape[1]} features")
        ds = replace(ds, image_shape=(h, w))
    cfg = BuildConfig(alpha=args.alpha, delta=args.delta, seed=args.seed, bits_per_feature=args.bits_per_feature,
                      hidden=args.hidden, epochs=args.epochs, augment=args.augment, asymmetry=args.asymmetry,
                      domain_samples=args.domain_samples,
                      cal_fraction=args.cal_fraction, test_fraction=args.test_fraction,
                      baseline=not args.no_baseline, dnn_output=args.dnn_output, features=args.features,
                      stability=args.stability, mask_first_layer=args.mask_first_layer,
                      distill_margin=args.distill_margin, flash_budget=args.flash_budget, design=args.design,
                      shift_copies=args.shift_copies)
    if args.flash_budget is not None and args.hidden is not None:
        raise BnnError("give --hidden or --flash-budget, not both: the budget chooses the hidden widths")
    if not 0 <= args.mask_first_layer < 1:
        raise BnnError(f"--mask-first-layer must be at least 0 and below 1, not {args.mask_first_layer}")
    if args.distill_margin is not None and not 0 <= args.distill_margin < float("inf"):
        raise BnnError(f"--distill-margin must be a finite weight of 0 or more, not {args.distill_margin}")
    if not args.stability >= 0:
        raise BnnError(f"--stability must be 0 or more, not {args.stability}")
    if args.bits_per_feature is not None and args.bits_per_feature < 1:
        raise BnnError("--bits-per-feature must be at least 1")
    res = build_artifact(ds, args.out, cfg, dnn_path=args.dnn, progress=sys.stderr.isatty() and not args.json)
    if not args.no_cnf:
        from ..render.cnf import write_cnf

        write_cnf(args.out, model=res.model)
    if args.json:
        print(json.dumps(res.metrics, indent=2))
        return 0
    m = res.metrics
    s = m["split"]
    print(f"{ds.name}: train {s['train']} (+{s['distillation_inputs']} distillation inputs), "
          f"calibration {s['calibration']}, test {s['test']}; DNN test accuracy {_pct(m['dnn_accuracy']).strip()}")
    print(f"test split, against the DNN, alpha={m['alpha']:g} delta={m['delta']:g} "
          f"(bound = one-sided {1 - m['delta']:.0%} Clopper-Pearson on decided inputs):")
    print(format_table(m, m["model"]["design"]))
    for note in res.notes:
        print(f"note: {note}")
    print(f"artifact written to {args.out} in {m['build_seconds']} s")
    return 0


def run_eval(args) -> int:
    from ..artifact import load_artifact
    from ..predict import evaluate

    art = load_artifact(args.artifact)
    ds = load_rows(args, art)
    m = evaluate(art, ds)
    if args.json:
        from ..logic.certify.report import certification_block

        cert = certification_block(art)
        print(json.dumps({**m, **({"certification": cert} if cert else {})}, indent=2))
        return 0
    print(f"{ds.name}: {m['rows']} rows, against the DNN (delta={m['delta']:g}):")
    print(format_table({**m, "baseline": None}, "one" if art.model.one_network else "pair"))
    print(f"cascade (bounds, DNN for unknowns) agrees with the DNN on {_pct(m['cascade_agreement']).strip()}")
    from ..logic.certify.report import certification_block, certification_lines

    for line in certification_lines(certification_block(art)):  # recorded by 'certify'
        print(line)
    print(f"note: {m['note']}")
    return 0


def run_predict(args) -> int:
    from ..artifact import load_artifact
    from ..predict import predict, write_predictions_csv

    art = load_artifact(args.artifact)
    ds = load_rows(args, art)
    pred = predict(art, ds, args.engine, args.machine)
    write_predictions_csv(pred, args.out)
    summary = {"rows": int(len(pred.final)), "decided_by_bnn": int((~pred.source_dnn & ~pred.invalid).sum()),
               "deferred_to_dnn": int(pred.source_dnn.sum()), "invalid": int(pred.invalid.sum()),
               "engine": args.engine, "out": args.out}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['rows']} rows: {summary['decided_by_bnn']} decided by the bounds ({args.engine}), "
              f"{summary['deferred_to_dnn']} deferred to the DNN"
              + (f", {summary['invalid']} invalid (non-finite features)" if summary["invalid"] else "")
              + f" -> {args.out}")
    return 0


def run_demo(args) -> int:
    from ..demo import run_demo as demo

    return demo(args.out, data=args.data, positive=args.positive, quick=args.quick,
                machine=args.machine, board=args.board, rows=args.rows)
