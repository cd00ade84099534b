"""Self-supervised pseudo pairwise labels (DDH §2.1, Algorithm 1, eq. 1–3), vectorised.

Song et al. (2017) build the similarity matrix S of the N training images from features X:

1. **First ranking** (Alg. 1 line 1, eq. 1): L_i = indices of the K1 nearest neighbours of x_i
   by cosine similarity; (S1)_ij = 1 iff x_j is a K1-NN of x_i.
2. **Neighbourhood expansion** (Alg. 1 lines 2–10): for every i, num_j = |L_i ∩ L_j| for all j;
   keep the K2 lists L_j with the largest overlap; L'_i = union of those K2 lists.
   (The text before eq. 3 describes the list similarity as 1/‖L_i − L_j‖²; eq. 2, which would
   define S2, is missing from the paper text. We follow Algorithm 1, i.e. the overlap count.)
3. **Final S** (eq. 3): S_ij = 1 iff (S2)_ik = 1 and j ∈ L_k, i.e. j ∈ L'_i.

Vectorisation: with A the sparse (N, N) 0/1 matrix of the K1 lists (A[i, L_i] = 1), the overlap
matrix is O = A Aᵀ (O_ij = |L_i ∩ L_j|, about K1² non-zeros per row), the top-K2 entries of
every row of O form T, and S = (T A > 0). The K1-NN search is an exact inner-product search on
L2-normalised features with FAISS (``IndexFlatIP``), or chunked numpy matmul as a fallback.
Nothing is O(N²) in memory and there is no Python loop over items: 50,000 CIFAR-10 images
take seconds (measured numbers are in the DDH chapter).

Choices the paper leaves open (all parameters):

* ``exclude_self`` (default True): an image is not its own K1-NN (L_i has K1 other images).
* the expansion always keeps the image's own list L_i first (its overlap K1 is maximal);
  ties in overlap are broken by the cosine rank of j in L_i, then by the index j.
* S is made symmetric for training (``symmetric=True``: s_ij = +1 if j ∈ L'_i or i ∈ L'_j);
  the diagonal is dropped (an image is trivially similar to itself).
* pairs not in S count as dissimilar (s_ij = −1) in the loss (eq. 5 uses s_ij ∈ {−1, +1}).

K1 = 15, K2 = 6 are the paper's values (§3.2). The authors' public code
(github.com/htconquer/ddh) could not be consulted offline, so whether it used other values
is unknown here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = [
    "knn_cosine",
    "expand_neighbourhood",
    "knn_matrix",
    "PseudoLabels",
    "build_pseudo_labels",
    "label_precision",
    "label_precision_curve",
    "batch_similarity",
    "class_similarity",
]


def _normalise(features: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_cosine(features: np.ndarray, k: int, exclude_self: bool = True, backend: str = "auto",
               chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact K-NN by cosine similarity (DDH Alg. 1 line 1).

    Parameters
    ----------
    features : (N, D) float array.
    k : number of neighbours, 1 <= k < N (k <= N when exclude_self=False).
    exclude_self : drop i from its own list.
    backend : "faiss" (IndexFlatIP on normalised vectors), "numpy" (chunked matmul +
        argpartition) or "auto" (faiss when importable).

    Returns
    -------
    idx : (N, k) int64, neighbours sorted by decreasing cosine similarity (ties by index).
    sim : (N, k) float32 cosine similarities.
    """
    x = _normalise(features)
    n = len(x)
    k = int(k)
    if k < 1 or k > n - (1 if exclude_self else 0):
        raise ValueError(f"k must be in [1, {n - (1 if exclude_self else 0)}] for N={n}, got {k}")
    if backend not in ("auto", "faiss", "numpy"):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'numpy', got {backend!r}")
    kk = k + 1 if exclude_self else k
    if backend in ("auto", "faiss"):
        try:
            import faiss  # noqa: F401
        except ImportError:
            if backend == "faiss":
                raise
            backend = "numpy"
        else:
            backend = "faiss"
    if backend == "faiss":
        import faiss
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sim, idx = index.search(x, kk)
        idx = idx.astype(np.int64)
    else:
        idx = np.empty((n, kk), dtype=np.int64)
        sim = np.empty((n, kk), dtype=np.float32)
        for s in range(0, n, chunk_size):
            g = x[s:s + chunk_size] @ x.T                       # (c, N)
            part = np.argpartition(-g, kk - 1, axis=1)[:, :kk]
            gv = np.take_along_axis(g, part, 1)
            order = np.lexsort((part, -gv), axis=1)
            idx[s:s + chunk_size] = np.take_along_axis(part, order, 1)
            sim[s:s + chunk_size] = np.take_along_axis(gv, order, 1)
    if exclude_self:
        rows = np.arange(n)[:, None]
        is_self = idx == rows
        # drop self where it appears; otherwise (duplicates tied with self) drop the last column
        has_self = is_self.any(1)
        drop = np.where(has_self, is_self.argmax(1), kk - 1)
        keep = np.ones_like(idx, dtype=bool)
        keep[np.arange(n), drop] = False
        idx = idx[keep].reshape(n, k)
        sim = sim[keep].reshape(n, k)
    return idx, sim.astype(np.float32)


def knn_matrix(knn: np.ndarray, n: int | None = None) -> sp.csr_matrix:
    """Eq. 1: (S1)_ij = 1 iff j ∈ L_i. knn (N, K1) int → CSR (N, N) of 1.0 (float32)."""
    knn = np.asarray(knn)
    if knn.ndim != 2:
        raise ValueError(f"knn must be (N, K) indices, got shape {knn.shape}")
    n_rows, k = knn.shape
    n = n_rows if n is None else n
    data = np.ones(n_rows * k, dtype=np.float32)
    return sp.csr_matrix((data, (np.repeat(np.arange(n_rows), k), knn.ravel())), shape=(n_rows, n))


def _row_topk(mat: sp.csr_matrix, k: int, priority: sp.csr_matrix | None = None) -> sp.csr_matrix:
    """Keep the k largest entries of every CSR row (ties: larger ``priority``, then smaller column)."""
    mat = mat.tocsr()
    mat.sort_indices()
    n = mat.shape[0]
    counts = np.diff(mat.indptr)
    rows = np.repeat(np.arange(n), counts)
    cols = mat.indices
    vals = mat.data
    if priority is not None:
        # vectorised lookup of priority[rows, cols] through sorted linear keys
        pc = sp.coo_matrix(priority)
        pkeys = pc.row.astype(np.int64) * mat.shape[1] + pc.col
        porder = np.argsort(pkeys, kind="stable")
        pkeys, pvals = pkeys[porder], pc.data[porder]
        keys = rows.astype(np.int64) * mat.shape[1] + cols
        pos = np.clip(np.searchsorted(pkeys, keys), 0, max(len(pkeys) - 1, 0))
        pr = np.where((len(pkeys) > 0) & (pkeys[pos] == keys), pvals[pos], 0.0) if len(pkeys) else np.zeros_like(vals)
    else:
        pr = np.zeros_like(vals)
    order = np.lexsort((cols, -pr, -vals, rows))         # last key is primary
    rank = np.arange(len(order)) - np.repeat(mat.indptr[:-1], counts)
    keep = order[rank < k]
    out = sp.csr_matrix((np.ones(len(keep), dtype=np.float32), (rows[keep], cols[keep])), shape=mat.shape)
    return out


def expand_neighbourhood(knn: np.ndarray, k2: int, sim: np.ndarray | None = None) -> sp.csr_matrix:
    """DDH Alg. 1 lines 2–13 and eq. 3, vectorised with sparse matrices.

    Parameters
    ----------
    knn : (N, K1) int, the K1-NN lists L_i (row i = L_i, best first).
    k2 : number of lists to merge per image (the image's own list counts as one; overlap
        |L_i ∩ L_i| = K1 is the maximum).
    sim : unused placeholder kept for API symmetry (ties use the rank in L_i).

    Returns
    -------
    S : CSR (N, N) float32 0/1, S_ij = 1 iff j ∈ L'_i = ∪_{k ∈ top-K2(i)} L_k (eq. 3).
        Not symmetric; the diagonal may be set (i ∈ L_k for its neighbours k).
    """
    knn = np.asarray(knn)
    n, k1 = knn.shape
    if k2 < 1:
        raise ValueError(f"k2 must be >= 1, got {k2}")
    A = knn_matrix(knn)                                   # (N, N), A[i, L_i] = 1
    overlap = (A @ A.T).tocsr()                           # O_ij = |L_i ∩ L_j|
    # tie-break priority: i itself first, then its K1-NN by rank, then anything else
    prio_data = np.concatenate([np.full(n, k1 + 1, np.float32),
                                np.tile(np.arange(k1, 0, -1, dtype=np.float32), n)])
    prio_rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), k1)])
    prio_cols = np.concatenate([np.arange(n), knn.ravel()])
    # duplicates would be summed by csr construction: build via coo and keep max
    prio = sp.coo_matrix((prio_data, (prio_rows, prio_cols)), shape=(n, n)).tocsr()
    prio.sum_duplicates()
    # make sure i is in row i of the overlap (it is: |L_i ∩ L_i| = K1 > 0)
    T = _row_topk(overlap, k2, priority=prio)              # (N, N), K2 ones per row (S2)
    S = (T @ A).tocsr()
    S.data[:] = 1.0
    S.eliminate_zeros()
    return S


@dataclass
class PseudoLabels:
    """Result of :func:`build_pseudo_labels`.

    knn : (N, K1) int64 first-ranking lists L_i. S1 : CSR (N, N) eq. 1.
    S : CSR (N, N) 0/1 final neighbourhood (eq. 3; symmetrised and diagonal-free when asked).
    timings : seconds for "knn", "expansion", "total".
    """

    knn: np.ndarray
    S1: sp.csr_matrix
    S: sp.csr_matrix
    k1: int
    k2: int
    timings: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.S.shape[0]

    def positives_per_item(self) -> float:
        return float(self.S.nnz) / max(self.n, 1)


def build_pseudo_labels(features: np.ndarray, k1: int = 15, k2: int = 6, expand: bool = True,
                        symmetric: bool = True, exclude_self: bool = True, backend: str = "auto") -> PseudoLabels:
    """Algorithm 1 of DDH: features (N, D) → pseudo pairwise labels.

    Parameters
    ----------
    features : (N, D) features of the training images (cosine similarity is used).
    k1, k2 : paper values 15 and 6 (§3.2).
    expand : False gives S = S1 (plain K1-NN, the "KNN" curve of Fig. 2).
    symmetric : symmetrise S (s_ij = 1 if either direction) and drop the diagonal.
    """
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    t0 = time.perf_counter()
    knn, _ = knn_cosine(features, k1, exclude_self=exclude_self, backend=backend)
    t1 = time.perf_counter()
    S1 = knn_matrix(knn)
    S = expand_neighbourhood(knn, k2) if expand else S1.copy()
    if symmetric:
        S = S.maximum(S.T).tocsr()
        S.setdiag(0)
        S.eliminate_zeros()
    t2 = time.perf_counter()
    return PseudoLabels(knn=knn, S1=S1, S=S.astype(np.float32), k1=int(k1), k2=int(k2),
                        timings={"knn": t1 - t0, "expansion": t2 - t1, "total": t2 - t0})


def label_precision(S: sp.spmatrix, labels: np.ndarray) -> float:
    """Fraction of positive pairs (i, j), i ≠ j, of S whose true labels agree (DDH Fig. 2).

    labels : (N,) int (same class) or (N, C) multi-hot (share at least one label).
    The true labels are used only to *measure* the pseudo labels, never to train.
    """
    S = sp.coo_matrix(S)
    m = S.row != S.col
    r, c = S.row[m], S.col[m]
    if len(r) == 0:
        return float("nan")
    labels = np.asarray(labels)
    if labels.ndim == 1:
        same = labels[r] == labels[c]
    else:
        same = (labels[r].astype(bool) & labels[c].astype(bool)).any(1)
    return float(same.mean())


def label_precision_curve(features: np.ndarray, labels: np.ndarray, ks=(5, 10, 15, 20, 30, 50, 100),
                          k2: int = 6, backend: str = "auto", expand_max_k: int | None = None) -> dict:
    """Fig. 2 of DDH: precision of the constructed positives against the true classes.

    For each K in ``ks``: "knn" = plain K-NN lists (S1 with K1 = K), "expanded" = Algorithm 1
    with K1 = K and the given K2 (symmetrised, as used for training). Also returns the mean
    number of positives per image for each, since expansion enlarges the neighbourhood.
    One K-NN search at max(ks) serves all K (lists are prefix-closed). The expansion's overlap
    matrix has about K² non-zeros per row, so ``expand_max_k`` skips it for larger K (entries
    None).

    Returns dict of lists: k, knn_precision, knn_positives, expanded_precision,
    expanded_positives, plus seconds.
    """
    ks = sorted(int(k) for k in ks)
    t0 = time.perf_counter()
    knn_all, _ = knn_cosine(features, ks[-1], backend=backend)
    out = {"k": ks, "knn_precision": [], "knn_positives": [], "expanded_precision": [],
           "expanded_positives": [], "k2": int(k2)}
    for k in ks:
        knn = knn_all[:, :k]
        S1 = knn_matrix(knn)
        out["knn_precision"].append(label_precision(S1, labels))
        out["knn_positives"].append(S1.nnz / S1.shape[0])
        if expand_max_k is not None and k > expand_max_k:
            out["expanded_precision"].append(None)
            out["expanded_positives"].append(None)
            continue
        S = expand_neighbourhood(knn, k2)
        S = S.maximum(S.T).tocsr()
        S.setdiag(0)
        S.eliminate_zeros()
        out["expanded_precision"].append(label_precision(S, labels))
        out["expanded_positives"].append(S.nnz / S.shape[0])
    out["seconds"] = time.perf_counter() - t0
    return out


def batch_similarity(S: sp.csr_matrix, idx: np.ndarray, negative: float = -1.0) -> np.ndarray:
    """s_ij for a mini-batch: (B, B) float32, +1 where S_ij = 1, ``negative`` elsewhere (eq. 5).

    idx : (B,) int indices into the rows/columns of S.
    """
    idx = np.asarray(idx)
    sub = S[idx][:, idx].toarray() > 0
    return np.where(sub, 1.0, negative).astype(np.float32)


def class_similarity(labels: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray | None = None,
                     negative: float = -1.0) -> np.ndarray:
    """Supervised variant (DDH Table 5): s_ij = +1 if the class labels agree (share a label for
    multi-hot), else ``negative``. Returns (len(idx_a), len(idx_b)) float32."""
    labels = np.asarray(labels)
    idx_b = idx_a if idx_b is None else idx_b
    a, b = labels[np.asarray(idx_a)], labels[np.asarray(idx_b)]
    if labels.ndim == 1:
        same = a[:, None] == b[None, :]
    else:
        same = (a.astype(np.float32) @ b.astype(np.float32).T) > 0
    return np.where(same, 1.0, negative).astype(np.float32)
