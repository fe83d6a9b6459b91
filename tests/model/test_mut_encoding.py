"""The thermometer encoding, pinned down for mutation testing: a hand-made encoder with known
thresholds, every accessor checked against values worked out by hand, and fit_thermometer on
columns whose quantiles are known."""

import numpy as np
import pytest

from bnnembed.model.encoding import Thermometer, fit_thermometer


@pytest.fixture
def enc():
    # raw columns 0..4; kept: column 1 (thresholds 0, 10), column 3 (-1.5), column 4 (1, 2, 3);
    # columns 0 and 2 unread
    return Thermometer(n_features=5, feature_index=np.array([1, 3, 4], np.int32),
                       offsets=np.array([0, 2, 3, 6], np.int32),
                       thresholds=np.array([0, 10, -1.5, 1, 2, 3], np.float32))


def test_sizes_owners_and_thresholds(enc):
    assert (enc.n_bits, enc.n_kept) == (6, 3)
    assert type(enc.n_bits) is int and type(enc.n_kept) is int
    assert enc.bit_owner().tolist() == [0, 0, 1, 2, 2, 2]
    assert enc.feature_thresholds(0).tolist() == [0, 10]
    assert enc.feature_thresholds(1).tolist() == [-1.5]
    assert enc.feature_thresholds(2).tolist() == [1, 2, 3]


def test_encode_compares_at_or_above_each_threshold_in_float32(enc):
    X = np.array([[99, -0.001, 99, -1.5, 0.999],
                  [-99, 0.0, -99, -1.6, 1.0],
                  [0, 10.0, 0, 5, 3.0],
                  [0, 9.999999, 0, 5, 2.5],
                  [0, 1e-46, 0, -2, 100]])  # 1e-46 is 0 in float32, so it reaches threshold 0
    bits = enc.encode(X)
    assert bits.dtype == np.uint8
    assert bits.tolist() == [[0, 0, 1, 0, 0, 0],
                             [1, 0, 0, 1, 0, 0],
                             [1, 1, 1, 1, 1, 1],
                             [1, 0, 1, 1, 1, 0],
                             [1, 0, 0, 1, 1, 1]]
    assert enc.levels(bits).tolist() == [[0, 1, 0], [1, 0, 1], [2, 1, 3], [1, 1, 2], [1, 0, 3]]
    assert enc.levels(bits).dtype == np.int64  # levels index thresholds (interval, representative)
    # 10 - 1e-7 rounds to 10.0 in float32: the device sees 10 and sets the bit
    assert enc.encode(np.array([[0, 10 - 1e-7, 0, 0, 0]]))[0, 1] == 1


def test_levels_and_bits_from_levels_are_inverse(enc):
    all_levels = np.array([[a, b, c] for a in range(3) for b in range(2) for c in range(4)])
    bits = enc.bits_from_levels(all_levels)
    assert bits.dtype == np.uint8 and bits.shape == (24, 6)
    assert enc.bits_from_levels(np.array([[1, 1, 2]])).tolist() == [[1, 0, 1, 1, 1, 0]]
    assert enc.bits_from_levels(np.array([[2, 0, 3]])).tolist() == [[1, 1, 0, 1, 1, 1]]
    assert np.array_equal(enc.levels(bits), all_levels)
    # thermometer: within a feature, a set bit implies every lower one
    for f in range(3):
        block = bits[:, enc.offsets[f] : enc.offsets[f + 1]]
        assert np.all(np.diff(block.astype(int), axis=1) <= 0)


def test_interval_bounds(enc):
    assert enc.interval(0, 0) == (None, 0.0)
    assert enc.interval(0, 1) == (0.0, 10.0)
    assert enc.interval(0, 2) == (10.0, None)
    assert enc.interval(1, 0) == (None, -1.5)
    assert enc.interval(1, 1) == (-1.5, None)
    assert enc.interval(2, 2) == (2.0, 3.0)
    assert all(type(v) is float for v in enc.interval(2, 2))


def test_representative_encodes_to_its_levels(enc):
    lo = np.array([7, -50, 8, -1, -0.5], np.float32)
    hi = lo + 100
    for levels in ([0, 0, 0], [1, 1, 2], [2, 0, 3], [0, 1, 1]):
        x = enc.representative(np.array(levels), lo, hi)
        assert x.dtype == np.float32
        assert enc.levels(enc.encode(x[None]))[0].tolist() == levels
        assert (x[0], x[2]) == (7, 8)  # unread columns keep lo
    x = enc.representative(np.array([0, 0, 0]), lo, hi)
    # below the first threshold: lo when that is already below it, else threshold - 1
    assert x.tolist() == [7, -50, 8, -2.5, -0.5]
    x = enc.representative(np.array([1, 1, 3]), lo, hi)
    assert x.tolist() == [7, 0, 8, -1.5, 3]  # the lower threshold of each interval
    assert lo.tolist() == [7, -50, 8, -1, -0.5]  # lo is not modified


def test_representative_of_a_feature_without_thresholds():
    enc = Thermometer(3, np.array([0, 2], np.int32), np.array([0, 0, 1], np.int32), np.array([5], np.float32))
    x = enc.representative(np.array([0, 0]), np.array([1.5, 2.5, 3.5]), np.array([9, 9, 9]))
    assert x.tolist() == [1.5, 2.5, 3.5]


def test_arrays_round_trip_with_the_stored_names_and_types(enc):
    arr = enc.to_arrays()
    assert sorted(arr) == ["encoding_feature_index", "encoding_n_features", "encoding_offsets",
                           "encoding_thresholds"]
    assert arr["encoding_n_features"].dtype == np.int32 and int(arr["encoding_n_features"]) == 5
    assert [arr[k].dtype for k in ("encoding_feature_index", "encoding_offsets", "encoding_thresholds")] == \
        [np.int32, np.int32, np.float32]
    other = enc.to_arrays("lower_")
    assert sorted(other) == sorted(k.replace("encoding_", "lower_") for k in arr)
    back = Thermometer.from_arrays({k: v.astype(np.float64) for k, v in arr.items()})
    assert back.n_features == 5 and type(back.n_features) is int
    assert back.feature_index.dtype == np.int32 and back.offsets.dtype == np.int32
    assert back.thresholds.dtype == np.float32
    assert back.thresholds.tolist() == enc.thresholds.tolist()
    assert back.offsets.tolist() == [0, 2, 3, 6] and back.feature_index.tolist() == [1, 3, 4]
    back2 = Thermometer.from_arrays(other, "lower_")
    assert back2.offsets.tolist() == [0, 2, 3, 6]


def test_bit_columns_and_restrict(enc):
    assert enc.bit_columns([2, 0]).tolist() == [0, 1, 3, 4, 5]
    assert enc.bit_columns([1, 1]).tolist() == [2]
    assert enc.bit_columns([]).tolist() == [] and enc.bit_columns([]).dtype == np.int64
    r = enc.restrict([2, 0])
    assert r.feature_index.tolist() == [1, 4] and r.offsets.tolist() == [0, 2, 5]
    assert r.thresholds.tolist() == [0, 10, 1, 2, 3] and r.n_features == 5
    assert r.restrict([1]).feature_index.tolist() == [4]
    with pytest.raises(ValueError):
        enc.restrict([])
    with pytest.raises(ValueError):
        enc.restrict([3])
    with pytest.raises(ValueError):
        enc.restrict([-1])
    assert enc.restrict([2]).offsets.tolist() == [0, 3]


def test_fit_thermometer_known_quantiles():
    X = np.stack([np.arange(10, dtype=np.float32),  # 0..9
                  np.repeat([1.0, 2.0], 5),  # two values
                  np.full(10, 4.0)], 1)  # constant
    enc, dropped = fit_thermometer(X, 1)
    # K=1: the 'higher' median: sorted[ceil(0.5 * 9)] = 5
    assert dropped == [2] and enc.feature_index.tolist() == [0, 1]
    assert enc.thresholds.tolist() == [5.0, 2.0] and enc.offsets.tolist() == [0, 1, 2]
    assert enc.thresholds.dtype == np.float32 and enc.n_features == 3
    enc3, _ = fit_thermometer(X, 3)
    # K=3: quantiles 1/4, 2/4, 3/4 -> ranks ceil(2.25)=3, ceil(4.5)=5, ceil(6.75)=7
    assert enc3.feature_thresholds(0).tolist() == [3.0, 5.0, 7.0]
    # a value at the minimum is never a threshold: 1, 2, 2 -> only 2
    assert enc3.feature_thresholds(1).tolist() == [2.0]
    with pytest.raises(ValueError):
        fit_thermometer(X, 0)


def test_fit_thermometer_sparse_feature_splits_at_the_median_above_the_minimum():
    col = np.zeros(50, np.float32)
    col[-4:] = [7, 8, 9, 10]  # distinct values above 0: 7, 8, 9, 10 -> index 4 // 2 = 2 -> 9
    enc, dropped = fit_thermometer(col[:, None], 3)
    assert dropped == [] and enc.thresholds.tolist() == [9.0] and enc.offsets.tolist() == [0, 1]
    col[-4:] = [7, 8, 9, 9]  # distinct 7, 8, 9 -> index 1 -> 8
    assert fit_thermometer(col[:, None], 3)[0].thresholds.tolist() == [8.0]
    col[-1:] = [-3]  # the minimum is -3 now: quantiles 0 lie above it
    enc, _ = fit_thermometer(col[:, None], 3)
    assert enc.thresholds.tolist() == [0.0]


def test_messages_and_types_of_other_inputs(enc):
    with pytest.raises(ValueError, match="^restrict: keep at least one feature$"):
        enc.restrict([])
    with pytest.raises(ValueError, match=r"^restrict: feature indices must be in 0\.\.2$"):
        enc.restrict([5])
    with pytest.raises(ValueError, match="^bits_per_feature must be >= 1$"):
        fit_thermometer(np.zeros((3, 1)), 0)
    # lo given as float64: the representative is float32, as the device reads it
    x = enc.representative(np.array([1, 1, 3]), [7.0, -50.0, 8.0, -1.0, -0.5], None)
    assert x.dtype == np.float32 and x.tolist() == [7, 0, 8, -1.5, 3]
    # fitted in float32 whatever the input type: 0.1 is the minimum, so it is no threshold
    col = np.array([0.1] * 6 + [0.7] * 4)  # float64
    enc1, _ = fit_thermometer(col[:, None], 1)
    assert enc1.thresholds.tolist() == [np.float32(0.7)]
    assert enc1.feature_index.dtype == np.int32 and enc1.offsets.dtype == np.int32
