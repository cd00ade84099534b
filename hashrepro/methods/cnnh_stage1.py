"""CNNH's stage 1 (Xia et al., AAAI 2014, §"Stage 1"): approximate codes H ∈ {−1, 1}^{n×q} with
H Hᵀ/q ≈ S by random coordinate descent with (safeguarded) Newton steps. The method, the bookkeeping
and what we changed are described in :mod:`hashrepro.methods.cnnh`, the recipe that uses it."""
from __future__ import annotations

import time

import numpy as np

from ..params import check_seed

__all__ = ["stage1_codes", "stage1_objective"]


def _sweep_impl(H, G, C, T, cls, SHt, S, order, q, safeguard, dense):  # pragma: no cover - compiled
    """One sweep of coordinate descent over the entries ``order`` (flat indices i·q + j).

    H (n, q) float64 in [−1, 1]; G = HᵀH (q, q); single-label: C (n_classes, q) class sums of the
    rows of H, T (q,) their total, cls (n,) class ids; dense: SHt = (S H)ᵀ (q, n), S (n, n).
    Everything is updated in place. Returns the number of entries changed.
    """
    changed = 0
    for t in range(order.shape[0]):
        i = order[t] // q
        j = order[t] % q
        x = H[i, j]
        hg = 0.0
        rn = 0.0
        for l in range(q):
            hg += H[i, l] * G[l, j]
            rn += H[i, l] * H[i, l]
        if dense:
            sh = SHt[j, i]
            sii = S[i, i]
        else:
            sh = 2.0 * C[cls[i], j] - T[j]
            sii = 1.0
        a = hg - q * sh                 # (L H)_ij
        lii = rn - q * sii              # L_ii
        g1 = 4.0 * a
        g2 = 4.0 * (G[j, j] + x * x + lii)
        if g2 > 0.0:
            d = -g1 / g2
        elif g1 > 0.0:
            d = -2.0
        elif g1 < 0.0:
            d = 2.0
        else:
            d = 0.0
        if x + d > 1.0:
            d = 1.0 - x
        if x + d < -1.0:
            d = -1.0 - x
        if safeguard and d != 0.0:
            c2 = 2.0 * (lii + G[j, j] + x * x)
            ok = False
            for _ in range(31):
                delta = 4.0 * d * a + c2 * d * d + 4.0 * x * d * d * d + d * d * d * d
                if delta < 0.0:
                    ok = True
                    break
                d *= 0.5
            if not ok:
                d = 0.0
        if d == 0.0:
            continue
        changed += 1
        # G = HᵀH: row/column j change by d·H[i, :], G_jj by 2dx + d²
        for l in range(q):
            if l != j:
                G[j, l] += d * H[i, l]
                G[l, j] += d * H[i, l]
        G[j, j] += 2.0 * d * x + d * d
        if dense:
            for k in range(S.shape[0]):
                SHt[j, k] += S[k, i] * d
        else:
            C[cls[i], j] += d
            T[j] += d
        H[i, j] = x + d
    return changed


try:  # numba is a declared dependency (the metrics kernels use it); fall back to plain Python
    import os as _os

    if _os.environ.get("HASHREPRO_NO_NUMBA", "") not in ("", "0"):
        raise ImportError("disabled by HASHREPRO_NO_NUMBA")
    from numba import njit as _njit

    _sweep = _njit(cache=True, nogil=True)(_sweep_impl)
except ImportError:  # pragma: no cover
    _sweep = _sweep_impl


def _as_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim not in (1, 2) or y.shape[0] < 1:
        raise ValueError(f"labels must be int class ids (n,) or multi-hot (n, C), got shape {y.shape}")
    return y


def stage1_objective(H: np.ndarray, labels=None, S: np.ndarray | None = None) -> float:
    """‖S − H Hᵀ/q‖²_F for codes or relaxed codes H (n, q) and S from ``labels`` (+1 / −1, see
    :func:`hashrepro.pseudolabels.class_similarity`) or given (n, n). O(n² q); for checks."""
    from ..pseudolabels import class_similarity

    H = np.asarray(H, dtype=np.float64)
    if S is None:
        y = _as_labels(labels)
        S = class_similarity(y, np.arange(len(y)), negative=-1.0)
    S = np.asarray(S, dtype=np.float64)
    q = H.shape[1]
    return float(np.sum((S - H @ H.T / q) ** 2))


def _objective_fast(H, G, SH, q, s_sq) -> float:
    """‖HHᵀ − qS‖²/q² from G = HᵀH and SH = S H: ‖G‖² − 2q·⟨H, SH⟩ + q²‖S‖², over q²."""
    return float((np.sum(G * G) - 2.0 * q * np.sum(H * SH) + q * q * s_sq) / (q * q))


def stage1_codes(labels=None, bits: int = 12, *, S: np.ndarray | None = None, sweeps: int = 50,
                 tol: float = 1e-4, seed: int = 0, safeguard: bool = True) -> tuple[np.ndarray, dict]:
    """CNNH stage 1: approximate codes H ∈ {−1, 1}^{n×q} with H Hᵀ/q ≈ S (module docstring).

    Parameters
    ----------
    labels : int (n,) class ids (fast path, O(q) per update) or multi-hot (n, C) (dense S from
        :func:`hashrepro.pseudolabels.class_similarity`: +1 when sharing a label, −1 otherwise).
    bits : q.
    S : optional explicit similarity (n, n), symmetric (then ``labels`` is ignored; dense path).
    sweeps : maximum number of sweeps (each visits all n·q entries once, in a new random order).
    tol : stop when a sweep lowers the objective by less than ``tol`` × its value.
    seed : initialisation and visiting order.
    safeguard : halve a step until it lowers the objective (True, default) or take the paper's
        clipped Newton step as is (False).

    Returns
    -------
    (codes int8 (n, q) in {−1, +1}, info) with info: ``objective`` (list: ‖S − HHᵀ/q‖² of the
    relaxed H at the start and after each sweep), ``objective_binary`` (of the returned codes),
    ``sweeps`` (run), ``changed`` (entries changed per sweep), ``time_s``, ``path``
    ("classes" | "dense"), ``n_pairs`` (n²).
    """
    from ..pseudolabels import class_similarity

    if not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"bits must be a positive int, got {bits!r}")
    if not isinstance(sweeps, (int, np.integer)) or sweeps < 0:
        raise ValueError(f"sweeps must be an int >= 0, got {sweeps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    seed = check_seed(seed)
    q = int(bits)
    t0 = time.perf_counter()
    if S is not None:
        S = np.ascontiguousarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[0] != S.shape[1] or not np.allclose(S, S.T):
            raise ValueError(f"S must be a symmetric (n, n) matrix, got shape {S.shape}")
        n = S.shape[0]
        dense = True
    else:
        if labels is None:
            raise ValueError("stage1_codes needs labels (n,) / (n, C) or an explicit S (n, n)")
        y = _as_labels(labels)
        n = y.shape[0]
        dense = y.ndim == 2
        if dense:
            S = np.ascontiguousarray(class_similarity(y, np.arange(n), negative=-1.0), dtype=np.float64)
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1.0, 1.0, size=(n, q))
    if dense:
        cls = np.zeros(n, dtype=np.int64)
        s_sq = float(np.sum(S * S))
    else:
        _, cls = np.unique(y, return_inverse=True)
        cls = cls.astype(np.int64)
        s_sq = float(n) * n
        S = np.zeros((1, 1))
    n_cls = int(cls.max()) + 1

    def state(H):
        G = H.T @ H
        if dense:
            SH = S @ H
            C, T = np.zeros((1, q)), np.zeros(q)
        else:
            C = np.zeros((n_cls, q))
            np.add.at(C, cls, H)
            T = H.sum(0)
            SH = 2.0 * C[cls] - T
        return G, C, T, SH

    G, C, T, SH = state(H)
    objective = [_objective_fast(H, G, SH, q, s_sq)]
    changed = []
    done = 0
    for _ in range(int(sweeps)):
        G, C, T, SH = state(H)   # fresh sums each sweep: no drift of the running updates
        SHt = np.ascontiguousarray(SH.T) if dense else np.zeros((1, 1))
        order = rng.permutation(n * q).astype(np.int64)
        changed.append(int(_sweep(H, G, C, T, cls, SHt, S, order, q, bool(safeguard), dense)))
        done += 1
        G, C, T, SH = state(H)
        objective.append(_objective_fast(H, G, SH, q, s_sq))
        prev = objective[-2]
        if prev - objective[-1] <= tol * max(abs(prev), 1e-12):
            break
    codes = np.where(H >= 0, 1, -1).astype(np.int8)
    B = codes.astype(np.float64)
    Gb, Cb, Tb, SHb = state(B)
    info = {"objective": [float(v) for v in objective], "objective_binary": _objective_fast(B, Gb, SHb, q, s_sq),
            "sweeps": done, "changed": changed, "time_s": time.perf_counter() - t0,
            "path": "dense" if dense else "classes", "n_pairs": int(n) * int(n), "safeguard": bool(safeguard)}
    return codes, info
