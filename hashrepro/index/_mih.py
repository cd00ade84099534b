"""The multi-index hashing engine of :class:`hashrepro.index.BucketIndex` (``method="mih"``).

Norouzi, Punjani & Fleet (CVPR 2012): the code is split into ``s`` substrings with one table each;
step ``j`` probes table ``j % s`` at sub-radius ``j // s``, after which every non-empty bucket
within Hamming radius ``j`` has been found (see the :mod:`hashrepro.index` docstring). A mixin:
it works on the attributes :class:`~hashrepro.index.BucketIndex` sets up (``_keys``, ``n_bits``,
``n_buckets``, ``_mih_tables``, ...) and its ``_finish`` / ``_scan_from_d`` helpers.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import _MIH_MAX_SUBSTRING_BITS, _concat_ranges, _submasks, flip_rank


class _MultiIndexMixin:
    """Multi-index hashing methods of :class:`hashrepro.index.BucketIndex`."""

    # multi-index hashing ----------------------------------------------------------------
    def _mih_build(self):
        """Multi-index tables (Norouzi et al. 2012): substring t covers code columns
        [c0, c0 + L); table t lists the bucket indices sorted by substring value (CSR)."""
        if self._mih_tables is not None:
            return self._mih_tables
        b, n = self.n_bits, self.n_buckets
        s = self._n_substrings_param
        if s == "auto":
            s = max(1, round(b / max(1.0, math.log2(max(n, 2)))), math.ceil(b / _MIH_MAX_SUBSTRING_BITS))
        s = int(min(s, b))
        base, extra = divmod(b, s)
        lengths = [base + (1 if t < extra else 0) for t in range(s)]
        kt = np.uint32 if b <= 32 else np.uint64  # narrower keys: less memory traffic
        keys = self._keys.astype(kt)
        tables = []
        c0 = 0
        for L in lengths:
            c1 = c0 + L
            shift = b - c1
            low = (1 << L) - 1
            sub = ((keys >> kt(shift)) & kt(low)).astype(np.int64)
            order = np.argsort(sub, kind="stable")
            off = np.zeros((1 << L) + 1, dtype=np.int64)
            np.cumsum(np.bincount(sub, minlength=1 << L), out=off[1:])
            tables.append((L, kt(shift), kt(low), order, keys[order], off, kt(low << shift)))
            c0 = c1
        self._mih_tables = (s, tables, {})
        return self._mih_tables

    def _mih_step(self, j, qk, owner_q, mcache, tables, s, bound=None):
        """Probe step ``j`` (table ``j % s`` at sub-radius ``j // s``) for queries ``owner_q``.

        After step j, every non-empty bucket within Hamming radius j (all of them when a table
        is exhausted) has been found (pigeonhole over the substrings: probing table t to
        sub-radius rho_t finds every bucket within sum_t (rho_t + 1) - 1). Each bucket is kept
        only at the first step that finds it, so no duplicates. Candidates farther than
        ``bound[owner]`` (a known upper bound on the query's stop radius) are dropped. Returns
        (owner, bidx, d) or None when the probe would cost more than a full scan.
        """
        n = self.n_buckets
        t, rho = j % s, j // s
        L, shift, low, order, ksorted, off, _ = tables[t]
        P = math.comb(L, rho)
        if self._mih_scan_fallback and rho > 0 and 4 * P + 2 * P * n / (1 << L) > n:
            return None
        sm = mcache.get((L, rho))
        if sm is None:
            sm = mcache[(L, rho)] = _submasks(L, rho)
        qkq = qk[owner_q]
        qsub = ((qkq >> shift) & low).astype(np.int64)
        probe = (qsub[:, None] ^ sm[None, :]).ravel()
        st = off[probe]
        ln = off[probe + 1] - st
        pos = _concat_ranges(st, ln)
        owner = np.repeat(np.repeat(owner_q, P), ln)
        x = ksorted[pos]
        x ^= qk[owner]
        d = np.bitwise_count(x)  # uint8
        if bound is not None:
            keep = np.flatnonzero(d <= bound[owner])
            owner, pos, d, x = owner[keep], pos[keep], d[keep], x[keep]
        if s > 1:
            first = None
            for tt, tab in enumerate(tables):
                fs = np.bitwise_count(x & tab[6]) * np.uint8(s) + np.uint8(tt)
                first = fs if first is None else np.minimum(first, fs)
            keep = np.flatnonzero(first == j)
            owner, pos, d = owner[keep], pos[keep], d[keep]
        return owner, order[pos], d.astype(np.int64)

    def _mih_batch(self, qints, qarr, sel, k, out):
        """Algorithm 1 for a batch of queries via multi-index hashing (n_bits <= 64)."""
        s, tables, mcache = self._mih_build()
        b = self.n_bits
        target = min(k, self.n_items)
        qk = qarr[sel].astype(tables[0][4].dtype)
        nc = sel.size
        active = np.ones(nc, dtype=bool)
        counts = np.zeros((nc, b + 1), dtype=np.int64)
        RQ = np.zeros(0, dtype=np.int64)
        RB = np.zeros(0, dtype=np.int64)
        RD = np.zeros(0, dtype=np.int64)
        # Upper bound on each query's stop radius: the K-th smallest distance among the buckets
        # found so far (single-code only: with multi-code items, code counts over-count items).
        bound = None if self._multi else np.full(nc, b, dtype=np.uint8)
        j = 0
        while active.any():
            act = np.flatnonzero(active)
            step = self._mih_step(j, qk, act, mcache, tables, s, bound)
            if step is None:
                break  # the remaining queries go to the scan below
            owner, bidx, d = step
            counts += np.bincount(owner * (b + 1) + d, weights=self._sizes[bidx],
                                  minlength=nc * (b + 1)).astype(np.int64).reshape(nc, b + 1)
            t, rho = j % s, j // s
            r_complete = b if rho >= tables[t][0] else min(j, b)
            cum = np.cumsum(counts[act], axis=1)
            if bound is not None:
                has = cum[:, -1] >= target
                bound[act[has]] = np.argmax(cum[has] >= target, axis=1)
                keep = d <= bound[owner]
                owner, bidx, d = owner[keep], bidx[keep], d[keep]
                keep = RD <= bound[RQ]
                RQ, RB, RD = RQ[keep], RB[keep], RD[keep]
            RQ, RB, RD = np.concatenate([RQ, owner]), np.concatenate([RB, bidx]), np.concatenate([RD, d])
            ready = act[cum[:, r_complete] >= target]
            if ready.size:
                if self._multi:
                    done = self._mih_finish_multi(qints, qarr, sel, ready, RQ, RB, RD, r_complete, k, out)
                else:
                    radius = np.argmax(cum[cum[:, r_complete] >= target] >= target, axis=1)
                    done = self._mih_finish_single(qarr, sel, qk, ready, radius, RQ, RB, RD, target, out)
                active[done] = False
                keep = active[RQ]
                RQ, RB, RD = RQ[keep], RB[keep], RD[keep]
            j += 1
        for i in np.flatnonzero(active):
            g = sel[i]
            out[g] = self._scan_from_d(qints[g], qarr[g], self._dist_to(qarr[g]), k)

    def _mih_finish_single(self, qarr, sel, qk, ready, radius, RQ, RB, RD, target, out):
        """Vectorised finish for single-code indexes: queries ``ready`` stop at ``radius``."""
        nc = qk.size
        rfull = np.full(nc, -1, dtype=np.int64)
        rfull[ready] = radius
        m = RD <= rfull[RQ]
        q_, b_, d_ = RQ[m], RB[m], RD[m]
        masks = self._keys[b_] ^ qk[q_]
        o = np.lexsort((~masks, d_, q_))
        q_, b_, d_, masks = q_[o], b_[o], d_[o], masks[o]
        sz = self._sizes[b_]
        cs = np.cumsum(sz)
        seg = np.searchsorted(q_, ready, side="left")
        base = np.where(seg > 0, cs[seg - 1], 0)
        stop = np.searchsorted(cs, base + target, side="left")
        flat = self._bucket_items[_concat_ranges(self._ptr[b_], sz)]
        b = self.n_bits
        for i, li in enumerate(ready.tolist()):
            st = int(stop[i])
            r = int(d_[st])
            visited = self._offsets[r] + flip_rank(int(masks[st]), b) + 1
            out[sel[li]] = (flat[base[i] : base[i] + target].astype(np.int64, copy=True), visited,
                            st - int(seg[i]) + 1, r)
        return ready

    def _mih_finish_multi(self, qints, qarr, sel, ready, RQ, RB, RD, r_complete, k, out):
        o = np.argsort(RQ, kind="stable")
        q_sorted = RQ[o]
        lo = np.searchsorted(q_sorted, ready, side="left")
        hi = np.searchsorted(q_sorted, ready, side="right")
        done = []
        for li, a, z in zip(ready.tolist(), lo.tolist(), hi.tolist()):
            rows = o[a:z]
            g = sel[li]
            res = self._finish(qints[g], qarr[g], RB[rows], RD[rows], r_complete, k)
            if res is not None:
                out[g] = res
                done.append(li)
        return np.array(done, dtype=np.int64)
