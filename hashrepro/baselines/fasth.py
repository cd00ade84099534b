"""FastH: two-step supervised hashing with boosted decision trees (Lin et al., CVPR 2014)."""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from ._base import BaseHasher, PairwiseSimilarity, check_float, check_int

__all__ = ["FastH"]


class FastH(BaseHasher):
    """FastHash-style two-step hashing: binary code inference, then one boosted-tree classifier
    per bit. **A variant**, not the authors' exact algorithm (see below).

    Lin, Shen, Shi, van den Hengel & Suter, *Fast supervised hashing with decision trees for
    high-dimensional data*, CVPR 2014. FastH learns bits one at a time. Step 1 infers the
    training codes of bit k by minimising the KSH-type loss
    ``sum_ij (r s_ij - sum_t b_it b_jt)^2`` (``s`` in {-1, +1}) given the previous bits, where the
    previous bits are the *outputs of the already trained hash functions* (so later bits
    correct earlier errors); step 2 trains boosted decision trees to predict that bit.

    Differences from the paper: step 1 uses spectral initialisation (top eigenvector of the
    residual similarity) refined by greedy single-bit flips (exact coordinate descent on the
    same objective) instead of GraphCut on submodular blocks; step 2 uses scikit-learn's
    ``HistGradientBoostingClassifier`` (depth-``max_depth`` trees, ``n_trees`` boosting
    rounds, logistic loss) instead of AdaBoost with depth-4 trees (200 in the paper).

    Parameters
    ----------
    n_bits : int.
    n_trees : int, boosting rounds per bit (50).
    max_depth : int, tree depth (4, as the paper).
    learning_rate : float (0.3).
    max_train : int or None, training points (None: all).
    flip_sweeps : int, greedy-flip sweeps over the points per bit (3).
    random_state : seeds the subsample and the boosting.

    Attributes
    ----------
    estimators_ : list of fitted classifiers, one per bit.
    """

    name = "fasth"
    supervised = True

    def __init__(self, n_bits: int = 32, n_trees: int = 50, max_depth: int = 4, learning_rate: float = 0.3,
                 max_train: int | None = None, flip_sweeps: int = 3, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.max_train = max_train
        self.flip_sweeps = flip_sweeps

    def _validate_params(self, n, d):
        check_int(self.n_trees, "n_trees", low=1)
        check_int(self.max_depth, "max_depth", low=1)
        check_float(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_int(self.max_train, "max_train", low=2, allow_none=True)
        check_int(self.flip_sweeps, "flip_sweeps", low=0)

    def _infer_bit(self, S: PairwiseSimilarity, B: np.ndarray, r: int, rng) -> np.ndarray:
        """Maximise ``b^T R b`` over b in {-1,1}^n with ``R = r S - B B^T``."""
        n = S.n

        def Rmul(v):
            return r * S.matmul(v) - B @ (B.T @ v)

        op = LinearOperator((n, n), matvec=Rmul, dtype=np.float64)
        v0 = rng.standard_normal(n)
        try:
            _, vec = eigsh(op, k=1, which="LA", v0=v0, maxiter=2000, tol=1e-4)
            b = np.where(vec[:, 0] >= 0, 1.0, -1.0)
        except Exception:  # pragma: no cover - ARPACK failure: random start
            b = np.where(v0 >= 0, 1.0, -1.0)
        Rb = Rmul(b)
        Y = S.Y
        for _ in range(self.flip_sweeps):
            changed = 0
            for i in rng.permutation(n):
                # R_ii = r - ||B_i||^2 (S_ii = 1);   gain of flipping i: -4 b_i (Rb)_i + 4 R_ii
                Rii = r - B[i] @ B[i]
                if -4 * b[i] * Rb[i] + 4 * Rii > 1e-9:
                    if S.multilabel:
                        col = r * S.dense([i])[0] - B @ B[i]
                    else:
                        col = r * (2.0 * (Y @ Y[i]) - 1.0) - B @ B[i]
                    Rb -= 2 * b[i] * col
                    b[i] = -b[i]
                    changed += 1
            if changed == 0:
                break
        return b

    def _fit(self, X, y):
        from sklearn.ensemble import HistGradientBoostingClassifier

        rng = self._rng()
        y = np.asarray(y)
        n = X.shape[0]
        if self.max_train is not None and n > self.max_train:
            idx = np.sort(rng.choice(n, self.max_train, replace=False))
            X, y = X[idx], y[idx]
            n = X.shape[0]
        S = PairwiseSimilarity(y, pm1=True)
        r = self.n_bits
        B = np.zeros((n, 0))
        self.estimators_ = []
        for k in range(r):
            b = self._infer_bit(S, B, r, rng)
            if np.all(b == b[0]):
                b[rng.randint(n)] *= -1  # a classifier needs two classes
            clf = HistGradientBoostingClassifier(max_depth=self.max_depth, max_iter=self.n_trees,
                                                 learning_rate=self.learning_rate, early_stopping=False,
                                                 random_state=rng.randint(2 ** 31 - 1))
            clf.fit(X, b > 0)
            self.estimators_.append(clf)
            pred = np.where(clf.decision_function(X) > 0, 1.0, -1.0)
            B = np.concatenate([B, pred[:, None]], axis=1)

    def _project(self, X):
        return np.stack([clf.decision_function(X) for clf in self.estimators_], axis=1)
