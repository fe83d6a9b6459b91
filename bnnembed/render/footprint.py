"""How many bytes the generated model occupies: its flash tables and its RAM scratch buffers.

The tables of ``bnn_model.c`` are arrays whose sizes follow from the artifact (packed weights and,
for a masked layer, its mask rows in the same table, ``max_mismatch`` per neuron, thresholds, feature indices and offsets) and four structs of the
runtime (``firmware/bnn.h``) whose sizes depend on the target's pointer size. Those structs are
described once, field by field, in :data:`STRUCT_FIELDS`; :func:`struct_sizes` lays them out
with the C rules every supported ABI follows (each field at a multiple of its alignment, which is
its size; the struct padded to its largest alignment). On the 32-bit targets
(``pointer_bytes=4``) :func:`model_footprint` is the ELF's own figure, symbol by symbol
(``tests/device/test_qemu.py`` checks it on every QEMU machine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..model.encoding import Thermometer
from ..model.intmodel import BoundNet, shares_hidden
from ..model.packing import n_words
from ..model.shifts import ShiftCopies
from .columns import column_items_words, column_words, stored_by_columns
from .quantize import Encoding

#: Bytes of the scalar field types (alignment = size); a type ending in ``*`` is a pointer.
SCALAR_BYTES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4,
                "float": 4}

#: The runtime's structs the generated tables instantiate: (field, C type) in declaration order,
#: as firmware/bnn.h declares them.
STRUCT_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "bnn_layer_t": (("n_in", "uint16_t"), ("n_out", "uint16_t"), ("n_words", "uint16_t"),
                    ("layout", "uint16_t"), ("weights", "const uint32_t *"),
                    ("max_mismatch", "const int16_t *")),
    "bnn_bound_t": (("n_layers", "uint8_t"), ("shares_hidden", "uint8_t"), ("layers", "const bnn_layer_t *"),
                    ("items", "uint32_t *")),
    "bnn_encoder_t": (("n_features", "uint16_t"), ("n_kept", "uint16_t"), ("n_bits", "uint16_t"),
                      ("feature_index", "const uint16_t *"), ("offsets", "const uint16_t *"),
                      ("thresholds", "const float *"), ("thresholds_q", "const int16_t *"),
                      ("feature_shift", "const int8_t *")),
    "bnn_copies_t": (("n_copies", "uint8_t"), ("height", "uint8_t"), ("width", "uint8_t"),
                     ("shifts", "const int8_t *"), ("shifted", "uint8_t *")),
    "bnn_model_t": (("encoder", "const bnn_encoder_t *"), ("upper", "const bnn_bound_t *"),
                    ("lower", "const bnn_bound_t *"), ("input_bits", "uint32_t *"),
                    ("scratch_a", "uint32_t *"), ("scratch_b", "uint32_t *"),
                    ("copies", "const bnn_copies_t *")),
}



@dataclass(frozen=True)
class Footprint:
    """Bytes the generated model occupies (tables in flash, scratch buffers in RAM)."""

    flash_bytes: int
    ram_bytes: int


def field_bytes(c_type: str, pointer_bytes: int) -> int:
    """Size (and alignment) of one field type."""
    return pointer_bytes if c_type.endswith("*") else SCALAR_BYTES[c_type]


def struct_sizes(pointer_bytes: int = 4) -> dict[str, int]:
    """``sizeof`` of every struct of :data:`STRUCT_FIELDS` on a target with this pointer size."""
    sizes = {}
    for name, fields in STRUCT_FIELDS.items():
        offset, align = 0, 1
        for _, c_type in fields:
            size = field_bytes(c_type, pointer_bytes)
            offset = -(-offset // size) * size + size
            align = max(align, size)
        sizes[name] = -(-offset // align) * align
    return sizes


def hidden_words(upper: BoundNet, lower: BoundNet) -> int:
    """Words of one hidden-activation scratch buffer (at least 1, C has no empty arrays)."""
    widths = [layer.n_out for net in (upper, lower) for layer in net.layers[:-1]]
    return max([1] + [n_words(w) for w in widths])


def model_footprint(encoder: Thermometer, upper: BoundNet, lower: BoundNet,
                    encoding: Encoding | str = Encoding.FLOAT, pointer_bytes: int = 4,
                    struct_bytes: Mapping[str, int] | None = None,
                    copies: ShiftCopies | None = None, columns: bool = False) -> Footprint:
    """Bytes of the generated tables (flash) and scratch buffers (RAM), runtime code excluded.

    ``struct_bytes`` overrides the struct sizes (default: :func:`struct_sizes` for ``pointer_bytes``).
    With ``copies`` (the bounds the device stores are then ``copies``'), the shift table and one
    moved image of scratch (4 bytes a feature: float, int16 and uint8 views share it) are added.
    With ``columns`` (the COLUMNS kernel) the dense hidden layers are stored by columns
    (:func:`~bnnembed.render.columns.column_words`, no ``max_mismatch``) and the bounds share one
    scratch of :func:`column_items_words`.
    """

    encoding = Encoding(encoding)
    sizeof = struct_bytes or struct_sizes(pointer_bytes)
    flash = 2 * encoder.n_kept + 2 * (encoder.n_kept + 1)  # bnn_feature_index, bnn_offsets
    if encoding is Encoding.FLOAT:
        flash += 4 * encoder.n_bits  # bnn_thresholds
    else:
        flash += 2 * encoder.n_bits + encoder.n_features  # bnn_thresholds_q, bnn_feature_shift
    flash += sizeof["bnn_encoder_t"]
    shared = shares_hidden(upper, lower)
    for net in (upper, lower):
        for i, layer in enumerate(net.layers):  # weights (and the mask rows after them), max_mismatch, the struct
            flash += sizeof["bnn_layer_t"]
            if net is lower and shared and i < len(net.layers) - 1:
                continue  # one network: the lower bound's hidden layers point at the upper's tables
            if stored_by_columns(layer, i == len(net.layers) - 1, columns):
                flash += 4 * column_words(layer.n_in, layer.n_out)
                continue
            words = layer.weights.size * (2 if layer.mask is not None else 1)
            flash += 4 * words + 2 * layer.n_out
        flash += sizeof["bnn_bound_t"]
    flash += sizeof["bnn_model_t"]
    ram = 4 * (n_words(encoder.n_bits) + 2 * hidden_words(upper, lower))  # input_bits, scratch_a/b
    if columns:
        ram += 4 * column_items_words(upper, lower)  # bnn_column_items
    if copies is not None:
        flash += sizeof["bnn_copies_t"] + 2 * copies.k  # the struct, bnn_copy_shifts
        ram += 4 * encoder.n_features  # bnn_shifted
    return Footprint(flash_bytes=int(flash), ram_bytes=int(ram))


def deployed_footprint(model, encoding: Encoding | str = Encoding.FLOAT, columns: bool = False) -> Footprint:
    """:func:`model_footprint` of what the device stores for ``model`` (a :class:`~bnnembed.model.model.Model`)."""
    return model_footprint(*model.device_parts, encoding, copies=model.copies, columns=columns)
