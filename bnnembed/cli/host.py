"""`bnnembed host`, `log` and `simulate`: the host side of the deferral link."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from .args import count, out_file, positive_float
from .build import add_rows_args


def register(sub) -> None:
    p = sub.add_parser(
        "host", help="answer a device's deferrals with the DNN and log every request",
        description="Serve the deferral protocol (docs/protocol.md) for the artifact in DIR: run the DNN for "
        "every input the device defers, reply, and append every request and reply to the SQLite decision "
        "log (DIR/workspace/decisions.sqlite unless --log). With --tcp every device connection is served at once; "
        "a serial port that goes away (a board resetting) is reopened with back-off and the gap logged. "
        "Runs until interrupted, SIGTERM or --max-seconds, and prints its statistics as one JSON line.",
    )
    p.add_argument("artifact", metavar="DIR", help="artifact directory (from 'bnnembed build')")
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--serial", metavar="DEVICE",
                      help="serial port, e.g. /dev/ttyACM0 (any pyserial URL works, e.g. socket://HOST:PORT)")
    link.add_argument("--tcp", metavar="[HOST:]PORT",
                      help="listen for the device on a TCP port (QEMU: -serial tcp:127.0.0.1:PORT); "
                      "binds 127.0.0.1 unless HOST is given; port 0 picks a free one")
    link.add_argument("--connect", metavar="HOST:PORT",
                      help="connect to a device bridge listening on HOST:PORT (e.g. QEMU with server=on)")
    p.add_argument("--baud", type=count(1), default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--log", default=None, type=out_file, metavar="FILE", help="decision log (default DIR/workspace/decisions.sqlite)")
    p.add_argument("--max-seconds", type=positive_float, default=None,
                   help="stop after this many seconds (the summary line is printed on every exit)")
    p.add_argument("--idle-timeout", type=positive_float, default=120.0, metavar="S",
                   help="close a connection that sends nothing for S seconds (default 120; the device reconnects)")
    p.add_argument("--max-devices", type=count(1), default=32, metavar="N",
                   help="devices served at once with --tcp (default 32; more are refused and counted)")
    p.set_defaults(func=run_host)

    p = sub.add_parser("log", help="show the host's decision log",
                       description="Print the decision log of DIR: one line per request the device sent "
                       "(deferrals answered by the DNN, decisions the device reported), then a summary.")
    p.add_argument("artifact", metavar="DIR", help="artifact directory")
    p.add_argument("--log", default=None, type=out_file, metavar="FILE", help="decision log (default DIR/workspace/decisions.sqlite)")
    p.add_argument("--json", action="store_true", help="print one JSON object (records, summary, runs)")
    p.add_argument("--limit", type=count(1), default=None, metavar="N", help="only the last N records")
    p.set_defaults(func=run_log)

    p = sub.add_parser(
        "simulate", help="run the generated firmware under QEMU, deferring to a host service over TCP",
        description="Compile the example application for a QEMU machine with the rows of SRC built in, attach "
        "its UART to a host service over TCP, run it, and write row,bound,final,source (final = what the "
        "device ended with: its own answer or the host's reply; 'undecided' if the link failed).",
    )
    p.add_argument("artifact", metavar="DIR", help="artifact directory")
    p.add_argument("--machine", required=True, help="QEMU machine with a CMSDK UART, e.g. mps2-an386")
    add_rows_args(p)
    p.add_argument("--rows", type=count(1), default=None, metavar="N", help="only the first N rows")
    p.add_argument("--out", required=True, type=out_file, metavar="FILE.csv", help="where to write the decisions")
    p.add_argument("--log", default=None, type=out_file, metavar="FILE", help="decision log (default DIR/workspace/decisions.sqlite)")
    p.add_argument("--no-report", action="store_true",
                   help="do not report the device's own decisions to the host (deferrals only)")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(func=run_simulate)


def run_host(args) -> int:
    from ..artifact import load_artifact
    from ..link.service import HostService
    from ..link.host import HostCore
    from ..link.endpoints import open_endpoint
    from ..link.decision_log import DecisionLog, default_log_path

    art = load_artifact(args.artifact)
    endpoint = open_endpoint(tcp=args.tcp, connect=args.connect, serial=args.serial, baud=args.baud)
    log_path = args.log or default_log_path(art.path)
    with DecisionLog(log_path) as log:
        core = HostCore(art, log)
        stop = threading.Event()
        service = HostService(core, endpoint, stop, idle_timeout=args.idle_timeout, max_connections=args.max_devices)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if args.max_seconds is not None:
            timer = threading.Timer(args.max_seconds, stop.set)
            timer.daemon = True
            timer.start()
        print(f"bnnembed host: {endpoint.describe()}, model {art.model_hash}, log {log_path}", flush=True)
        try:
            stats = service.run()
        except KeyboardInterrupt:
            stop.set()
            stats = core.stats()
    print(json.dumps(stats, sort_keys=True), flush=True)
    return 0


def _fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def run_log(args) -> int:
    from ..link.decision_log import DecisionLog, default_log_path
    from ..model.intmodel import Decision
    from ..link.protocol import MsgType, NackReason

    path = args.log or default_log_path(args.artifact)
    with DecisionLog(path, readonly=True) as log:
        records = log.records(args.limit)
        summary = log.summary()
        runs = log.runs()
    if args.json:
        json.dump({"log": path, "summary": summary, "runs": runs, "records": [r.to_json() for r in records]},
                  sys.stdout, indent=1)
        print()
        return 0

    def label(v):
        return "-" if v is None else Decision(int(v)).label

    print(f"{'id':>5} {'received':23} {'session':>10} {'seq':>6} {'kind':6} {'device':7} {'dnn':4} {'bounds':7} "
          f"{'reply':14} {'retries':>7} decision_id")
    for r in records:
        if r.reply_type == MsgType.NACK:
            reply = f"nack:{NackReason(r.reply_value).name.lower()}" if r.reply_value in NackReason._value2member_map_ else "nack"
        elif r.reply_type == MsgType.DECISION:
            reply = f"decision:{label(r.reply_value)}"
        else:
            reply = "ack"
        print(f"{r.id:>5} {_fmt_time(r.received_at):23} {r.session:>10} {r.seq:>6} {r.kind:6} "
              f"{label(r.device_decision):7} {label(r.dnn_decision):4} {label(r.reference_decision):7} "
              f"{reply:14} {r.retries:>7} {r.decision_id or '-'}")
    print("summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def run_simulate(args) -> int:
    from ..device.simulate import simulate

    result = simulate(args.artifact, machine=args.machine, data=args.data, label=args.label, positive=args.positive,
                      rows=args.rows,
                      out=args.out, log_path=args.log, report=not args.no_report)
    if args.json:
        print(json.dumps(result.summary, indent=1, sort_keys=True))
    else:
        s = result.summary
        print(f"{s['rows']} rows on {s['machine']} ({s.get('input', 'float')} input): {s['decided_on_device']} decided on the device, "
              f"{s['deferred']} deferred ({s['answered_by_host']} answered by the host DNN, "
              f"{s['undecided']} undecided)" + (f", {s['invalid']} invalid (non-finite features)" if s.get("invalid") else "")
              + f"; wrote {args.out}")
    return 0
