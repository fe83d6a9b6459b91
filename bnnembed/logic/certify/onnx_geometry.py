"""Index geometry of convolutions, pools and reductions over a flattened tensor.

Tensors are ``(C, *spatial)`` after the batch dimension, flattened row-major (flat index =
``c*H*W + h*W + w``). These helpers turn an ONNX operator's attributes (``pads``/``auto_pad``,
``strides``, ``dilations``, ``ceil_mode``, ``group``) into what :mod:`.onnx_ops` builds its
:class:`~.plnet.Op` from: a dense convolution matrix, per-output pooling windows (padding cells
left out) with their averaging counts, and groups of reduced indices.
"""

from __future__ import annotations

import numpy as np


def _pads(auto_pad: str, sp, k_eff, strides, pads):
    nd = len(sp)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pb, pe = [], []
        for i in range(nd):
            out = -(-sp[i] // strides[i])
            total = max((out - 1) * strides[i] + k_eff[i] - sp[i], 0)
            small = total // 2
            big = total - small
            pb.append(small if auto_pad == "SAME_UPPER" else big)
            pe.append(big if auto_pad == "SAME_UPPER" else small)
        return pb, pe
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _out_size(n, pb, pe, k_eff, s, ceil_mode):
    span = n + pb + pe - k_eff
    if span < 0:
        return 0
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pb:  # the last window would start in the end padding
        out -= 1
    return out


def _conv_matrix(in_shape, w, strides, pb, pe, dil, group):
    """Dense ``(out, in)`` matrix of a convolution over the flattened ``(C, *spatial)`` tensor."""
    C, sp = in_shape[0], tuple(in_shape[1:])
    M, Cg, k = w.shape[0], w.shape[1], tuple(w.shape[2:])
    nd = len(sp)
    k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    out_sp = tuple(_out_size(sp[i], pb[i], pe[i], k_eff[i], strides[i], False) for i in range(nd))
    if min(out_sp) <= 0:
        return None, out_sp
    Pin, Pout = int(np.prod(sp)), int(np.prod(out_sp))
    Wd = np.zeros((M * Pout, C * Pin))
    O = np.indices(out_sp).reshape(nd, -1)
    st = np.array(strides)[:, None]
    Mg = M // group
    m = np.arange(M)
    c = (m // Mg)[:, None] * Cg + np.arange(Cg)[None, :]  # (M, Cg) input channels
    for kidx in np.ndindex(*k):
        pos = O * st - np.array(pb)[:, None] + (np.array(kidx) * np.array(dil))[:, None]
        valid = np.all((pos >= 0) & (pos < np.array(sp)[:, None]), axis=0)
        if not valid.any():
            continue
        in_sp = np.ravel_multi_index(tuple(pos[:, valid]), sp)
        out_p = np.flatnonzero(valid)
        rows = (m[:, None, None] * Pout + out_p[None, None, :])
        cols = c[:, :, None] * Pin + in_sp[None, None, :]
        vals = w[(slice(None), slice(None)) + kidx][:, :, None]
        rows, cols, vals = np.broadcast_arrays(rows, cols, vals)
        Wd[rows.ravel(), cols.ravel()] = vals.ravel()
    return Wd, (M,) + out_sp


def _pool_windows(in_shape, k, strides, pb, pe, dil, ceil_mode):
    """Per output (row-major ``(C, *out_spatial)``): input flat indices of the window (padding
    left out) and the count of the window clipped to the padded input (for averages)."""
    C, sp = in_shape[0], tuple(in_shape[1:])
    nd = len(sp)
    k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    out_sp = tuple(_out_size(sp[i], pb[i], pe[i], k_eff[i], strides[i], ceil_mode) for i in range(nd))
    if min(out_sp) <= 0:
        return None, None, out_sp
    Pin = int(np.prod(sp))
    wins, counts = [], []
    for o in np.ndindex(*out_sp):
        start = [o[i] * strides[i] - pb[i] for i in range(nd)]
        cells = []
        for kidx in np.ndindex(*k):
            pos = [start[i] + kidx[i] * dil[i] for i in range(nd)]
            if all(0 <= pos[i] < sp[i] for i in range(nd)):
                cells.append(int(np.ravel_multi_index(pos, sp)))
        cnt = 1
        for i in range(nd):
            cnt *= min(start[i] + k_eff[i], sp[i] + pe[i]) - start[i]
        wins.append(cells)
        counts.append(cnt)
    all_w = [tuple(c * Pin + i for i in w) for c in range(C) for w in wins]
    all_c = counts * C
    return all_w, all_c, (C,) + out_sp


def _reduce_windows(shape, axes, keepdims):
    """Groups of flat indices reduced together (row-major order of the kept axes)."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    moved = np.moveaxis(idx, list(axes), list(range(len(kept), len(shape)))) if axes else idx
    groups = moved.reshape(int(np.prod([shape[i] for i in kept])) if kept else 1, -1)
    if keepdims:
        out = tuple(1 if i in axes else shape[i] for i in range(len(shape)))
    else:
        out = tuple(shape[i] for i in kept)
    return [tuple(int(v) for v in g) for g in groups], out
