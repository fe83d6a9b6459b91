"""``bnnembed boards``, ``bnnembed codegen`` and ``bnnembed qemu``: the firmware commands."""

from __future__ import annotations

import json

from ..render.c import PopcountStrategy
from ..render.quantize import Encoding, feeds_bytes
from .args import count, out_dir
from .build import add_rows_args, load_rows


def register(sub) -> None:
    p = sub.add_parser("boards", help="list the supported boards")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run_boards)

    p = sub.add_parser("codegen", help="write a PlatformIO project for a board")
    p.add_argument("artifact", metavar="DIR", help="artifact directory from 'bnnembed build'")
    p.add_argument("--board", required=True, help="board id (see 'bnnembed boards')")
    p.add_argument("--out", required=True, type=out_dir, metavar="PROJECT", help="project directory to write")
    p.add_argument("--encoding", choices=[e.value for e in Encoding], default=Encoding.FLOAT.value,
                   help="on-device input encoding (default float; int16 for cores without an FPU)")
    p.set_defaults(func=run_codegen)

    from ..device.machines import qemu_machines

    p = sub.add_parser("qemu", help="run the generated C under QEMU and compare with numpy")
    p.add_argument("artifact", metavar="DIR", help="artifact directory from 'bnnembed build'")
    p.add_argument("--machine", required=True, choices=qemu_machines(), metavar="M",
                   help="QEMU machine: " + ", ".join(qemu_machines()))
    add_rows_args(p)
    p.add_argument("--rows", type=count(1), default=None, metavar="N", help="first N rows (default all)")
    p.add_argument("--encoding", choices=[e.value for e in Encoding], default=Encoding.FLOAT.value)
    p.add_argument("--input", choices=("auto", "float", "uint8"), default="auto",
                   help="what the firmware is fed: uint8 decides and defers the rows as bytes "
                        "(bnn_decide_u8, bnn_link_defer_u8; every value a whole number 0..255), float the "
                        "encoding's own values; auto (default): uint8 when the artifact declares uint8 "
                        "features (manifest features.native) and the rows are, else float")
    p.add_argument("--kernel", choices=[k.name.lower() for k in PopcountStrategy], default=None,
                   help="popcount kernel (default: the one the board files on this machine's core select, "
                        "measured best by bench/run.py; swar3 where no board runs on it; swar is the reference)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_qemu)


def run_boards(args) -> int:
    from ..device.boards import load_boards

    boards = load_boards()
    if args.json:
        print(json.dumps([b.summary() for b in boards.values()], indent=2))
        return 0
    print(f"{'board':<20} {'core':<14} {'platform':<12} {'framework':<8} {'flash':>9} {'RAM':>8}  qemu stand-in")
    for b in boards.values():
        standin = b.qemu_machine or f"(compile-checked: {b.compile_standin or 'portable C'})"
        print(f"{b.id:<20} {b.core:<14} {b.platform:<12} {b.framework:<8} {b.flash_bytes:>9} "
              f"{b.ram_bytes:>8}  {standin}")
    return 0


def run_codegen(args) -> int:
    from ..artifact import load_artifact
    from ..device.boards import get_board
    from ..render.project import check_budget, write_board_project

    board = get_board(args.board)
    artifact = load_artifact(args.artifact)
    files = write_board_project(artifact.model, board, args.out, args.encoding)
    fp = check_budget(artifact, board, args.encoding)
    print(f"wrote {len(files)} files to {args.out} for {board.name} ({board.core})")
    print(f"model tables: {fp.flash_bytes} bytes flash of {board.model_flash_budget}, "
          f"{fp.ram_bytes} bytes RAM of {board.model_ram_budget}")
    if not board.fpu and args.encoding == Encoding.FLOAT.value:
        print("note: this core has no FPU; --encoding int16 avoids software float compares "
              "(exact for integer-valued features, see docs/firmware.md)")
    print(f"build and flash: cd {args.out} && pio run -t upload")
    return 0


def board_kernel(machine: str) -> PopcountStrategy:
    """The kernel the board files that run on ``machine`` select (the first by board id), else SWAR3."""
    from ..device.boards import load_boards

    kernels = [b.popcount for b in sorted(load_boards().values(), key=lambda b: b.id) if b.qemu_machine == machine]
    return kernels[0] if kernels else PopcountStrategy.SWAR3


def run_qemu(args) -> int:
    from ..artifact import load_artifact
    from ..errors import BnnError
    import numpy as np

    from ..device.qemu import BuildOptions, check_against_numpy, defer_frame_instructions

    artifact = load_artifact(args.artifact)
    ds = load_rows(args, artifact)
    X = ds.X if args.rows is None else ds.X[: args.rows]
    if args.rows is not None and args.rows <= 0:
        raise BnnError("--rows must be positive")
    kernel = PopcountStrategy[args.kernel.upper()] if args.kernel else board_kernel(args.machine)
    uint8_input = args.input == "uint8" or (args.input == "auto" and feeds_bytes(artifact, X))
    report = check_against_numpy(artifact, args.machine, X, BuildOptions(encoding=Encoding(args.encoding),
                                                                       popcount=kernel, uint8_input=uint8_input))
    # what an UNKNOWN costs on top of the inference: building the DEFER frame the link sends
    report.defer_frame_instructions = defer_frame_instructions(artifact.encoder.n_features, args.machine,
                                                               np.nan_to_num(X[:20]), uint8_input=uint8_input)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        r = report
        print(f"machine {r.machine} ({r.core}), {r.encoding} encoding, {r.input} input: {r.rows} rows, "
              f"{r.mismatches} decision mismatches, {r.score_mismatches} score mismatches vs numpy "
              f"({r.kernel} popcount kernel)")
        print(f"flash {r.flash_bytes} bytes (model {r.model_flash_bytes} + runtime {r.runtime_flash_bytes}), "
              f"RAM {r.ram_bytes} bytes")
        if r.instructions_per_inference is not None and r.copies > 1:
            print(f"instructions per decision {r.instructions_per_inference} over {r.copies} shifted copies "
                  f"(each moved, encoded and run); {r.instructions_per_bmac} per binary MAC ({r.binary_macs} MACs)")
        elif r.instructions_per_inference is not None:
            print(f"instructions per inference {r.instructions_per_inference} (encode {r.encode_instructions}, "
                  f"bounds {r.bounds_instructions}); {r.instructions_per_bmac} per binary MAC "
                  f"({r.binary_macs} MACs)")
        if r.defer_frame_instructions is not None:
            how = "uint8 features" if uint8_input else "features at their narrowest width"
            print(f"one DEFER frame ({how}, CRC-32, COBS) costs {r.defer_frame_instructions} instructions")
        if r.float_mismatches is not None:
            print(f"int16 vs float model: {r.float_mismatches} decisions differ")
        print(f"decisions: {r.decisions}")
    return 0 if report.mismatches == 0 and report.score_mismatches == 0 else 1
