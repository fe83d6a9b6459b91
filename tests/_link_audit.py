"""The deferral link's invariants, checked against the host's log after a faulty run.

No misread (a decided row ends with its bound's answer, a deferred row with the DNN's, or
undecided, never anything else); no lost record (every request the device saw answered is in the
log, with its exact features); no duplicate (one record per request, whatever the retries).
"""

from __future__ import annotations

import numpy as np

from bnnembed.decision_log import DecisionLog
from bnnembed.intmodel import Decision


def audit(log_path, session, X, ref, dnn, final, status):
    """The invariants; returns counts for the report."""
    unknown = ref == Decision.UNKNOWN
    final = np.asarray(final)
    for i in range(len(X)):
        if final[i] == 2:
            continue
        expected = int(dnn[i]) if unknown[i] else int(ref[i])
        assert final[i] == expected, f"row {i}: misread decision"
    with DecisionLog(log_path, readonly=True) as log:
        recs = [r for r in log.records() if r.session == session]
    keys = [(r.session, r.seq) for r in recs]
    assert len(keys) == len(set(keys)), "duplicate log records"
    by_seq = {r.seq: r for r in recs}
    for r in recs:
        i = r.seq - 1
        assert 0 <= i < len(X) and np.array_equal(r.features, X[i]), "a corrupted request was logged"
        assert r.kind == ("defer" if unknown[i] else "report")
    lost = [i for i in range(len(X)) if status[i] == 0 and (i + 1) not in by_seq]
    assert lost == [], f"answered requests missing from the log: {lost}"
    undecided = int((final == 2).sum())
    return {"rows": len(X), "records": len(recs), "lost": len(lost), "duplicates": len(keys) - len(set(keys)),
            "undecided": undecided, "undecided_but_logged": sum(1 for i in range(len(X)) if final[i] == 2 and (i + 1) in by_seq),
            "retries_answered_from_log": sum(r.retries for r in recs)}
