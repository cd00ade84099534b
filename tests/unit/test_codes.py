import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import hashrepro.codes as codes
from hashrepro.codes import (
    MultiCodes,
    binarize,
    from_pm1,
    hamming,
    hamming_packed,
    pack,
    to_pm1,
    top_bits_by_weight,
    truncate,
    unpack,
)

FAST = settings(max_examples=40, deadline=None)


def bits_arrays(max_n=20, max_bits=70):
    return st.tuples(st.integers(0, max_n), st.integers(0, max_n), st.integers(1, max_bits)).flatmap(
        lambda t: st.tuples(
            hnp.arrays(np.uint8, (t[0], t[2]), elements=st.integers(0, 1)),
            hnp.arrays(np.uint8, (t[1], t[2]), elements=st.integers(0, 1)),
        )
    )


def brute_hamming(q, d):
    return np.array([[sum(int(a != b) for a, b in zip(x, y)) for y in d] for x in q], dtype=np.int64).reshape(
        len(q), len(d)
    )


@FAST
@given(bits_arrays(), st.integers(1, 7))
def test_hamming_matches_brute_force(qd, chunk):
    q, d = qd
    D = hamming(q, d, chunk_size=chunk)
    assert D.dtype == np.uint16 and D.shape == (len(q), len(d))
    np.testing.assert_array_equal(D, brute_hamming(q, d))
    # inner-product identity on {-1,+1} codes (MCH eq. 1)
    if len(q) and len(d):
        Q = q.shape[1]
        ip = to_pm1(q).astype(np.int64) @ to_pm1(d).astype(np.int64).T
        np.testing.assert_array_equal(D, (Q - ip) // 2)


@FAST
@given(bits_arrays())
def test_pack_unpack_roundtrip(qd):
    q, _ = qd
    p = pack(q)
    assert p.shape == (q.shape[0], (q.shape[1] + 7) // 8)
    np.testing.assert_array_equal(p, np.packbits(q, axis=1))
    np.testing.assert_array_equal(unpack(p, q.shape[1]), q)
    np.testing.assert_array_equal(from_pm1(to_pm1(q)), q)


def test_lookup_table_fallback(monkeypatch):
    rng = np.random.default_rng(0)
    q = rng.integers(0, 2, (9, 77), dtype=np.uint8)
    d = rng.integers(0, 2, (31, 77), dtype=np.uint8)
    ref = hamming(q, d)
    monkeypatch.setattr(codes, "_HAS_BITWISE_COUNT", False)
    np.testing.assert_array_equal(hamming(q, d, chunk_size=4), ref)


def test_hamming_packed_and_torch_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    q = rng.integers(0, 2, (5, 12), dtype=np.uint8)
    d = rng.integers(0, 2, (8, 12), dtype=np.uint8)
    ref = brute_hamming(q, d)
    np.testing.assert_array_equal(hamming_packed(pack(q), pack(d)), ref)
    np.testing.assert_array_equal(hamming(torch.from_numpy(q), torch.from_numpy(d).bool()), ref)
    x = torch.tensor([[0.2, -0.1, 0.0], [0.9, 0.5, 0.51]])
    np.testing.assert_array_equal(binarize(x), [[1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(binarize(x, 0.5), [[0, 0, 0], [1, 0, 1]])


def test_validation_errors():
    with pytest.raises(ValueError, match="values in"):
        hamming(np.array([[0, 2]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="from_pm1"):
        pack(np.array([[-1, 1]]))
    with pytest.raises(ValueError, match="2-D"):
        hamming(np.array([0, 1]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="bits"):
        hamming(np.zeros((1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="n_bits"):
        unpack(np.zeros((1, 2), np.uint8), 20)
    with pytest.raises(ValueError, match="uint8"):
        hamming_packed(np.zeros((1, 2), np.int64), np.zeros((1, 2), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.array([[np.nan]]))
    with pytest.raises(ValueError, match=r"-1, \+1"):
        from_pm1(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="n_keep"):
        top_bits_by_weight(np.ones(4), 5)


def test_top_bits_and_truncate():
    w = np.array([0.1, -3.0, 0.5, 2.0, -0.5])
    np.testing.assert_array_equal(top_bits_by_weight(w, 2), [1, 3])
    np.testing.assert_array_equal(top_bits_by_weight(w, 3), [1, 2, 3])  # tie |0.5| -> lower index
    np.testing.assert_array_equal(top_bits_by_weight(w, 0), [])
    b = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(truncate(b, w, 2), [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="shape"):
        truncate(b, w[:3], 2)


@FAST
@given(bits_arrays(max_n=12, max_bits=20), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_multicodes_min_hamming(qd, n_items, seed):
    q, d = qd
    if len(d) < n_items:
        return
    rng = np.random.default_rng(seed)
    owners = np.concatenate([np.arange(n_items), rng.integers(0, n_items, len(d) - n_items)])
    rng.shuffle(owners)
    mc = MultiCodes(d, owners)
    assert mc.n_items == n_items and mc.n_codes == len(d)
    D = brute_hamming(q, d)
    ref = np.stack([D[:, owners == i].min(axis=1) for i in range(n_items)], axis=1).reshape(len(q), n_items)
    np.testing.assert_array_equal(mc.min_hamming(q, chunk_size=3), ref)


def test_multicodes_constructors_and_errors():
    a = np.array([[0, 0, 0], [1, 1, 1]])
    b = np.array([[1, 0, 0]])
    mc = MultiCodes.from_list([a, b])
    np.testing.assert_array_equal(mc.codes_per_item, [2, 1])
    np.testing.assert_array_equal(mc.min_hamming(np.array([[1, 1, 0]])), [[1, 1]])
    np.testing.assert_array_equal(mc.item_codes(0), a)
    s = MultiCodes.single(a)
    np.testing.assert_array_equal(s.min_hamming(a), hamming(a, a))
    with pytest.raises(ValueError, match="own no code"):
        MultiCodes(a, [0, 2])
    with pytest.raises(ValueError, match="one item id per code"):
        MultiCodes(a, [0])


@pytest.mark.parametrize("n_bits", [5, 64, 70, 300])
def test_hamming_rows_engine(n_bits):
    rng = np.random.default_rng(n_bits)
    q = rng.integers(0, 2, (11, n_bits), dtype=np.uint8)
    d = rng.integers(0, 2, (23, n_bits), dtype=np.uint8)
    eng = codes._HammingRows(pack(q), pack(d), n_bits, max_rows=4)
    assert eng.dtype == (np.uint8 if n_bits < 256 else np.uint16)
    ref = brute_hamming(q, d)
    for s in range(0, 11, 4):
        np.testing.assert_array_equal(eng.rows(s, min(11, s + 4)), ref[s : s + 4])
