"""Tables of the DDH chapter by regime: the paper setting (ImageNet backbone) beside the
from-scratch rows. The chapter page only calls these.

A record's *regime* (:func:`regime`) is ``"pretrained (efficientnet_lite0)"`` when it ran on the
ImageNet backbone (``config.backbone``) or on its features (``config.features`` /
``config.descriptor``), else ``"scratch"`` (records older than the ``backbone`` parameter ran
from scratch).

* :func:`with_regime` — the records frame with ``regime`` and ``backbone`` columns.
* :func:`table2` — Table 2 in one regime: DDH and the six shallow hashers on the same features,
  paper / ours (mean ± std over seeds, n) / delta / tie-aware, one row per method × bits.
* :func:`table4` — Table 4 (shallow hashers on deep features) in one regime.
* :func:`table6` — Table 6 (Flowers-17, linear SVM) in one regime.
* :func:`label_table` — Fig. 2's label precision per feature source.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

__all__ = ["PRETRAINED", "regime", "with_regime", "table2", "table4", "table6", "label_table"]

PRETRAINED = "efficientnet_lite0"
_SHALLOW_NAMES = {"lsh": "LSH", "pcah": "PCAH", "itq": "PCA-ITQ", "sh": "SH", "sphh": "SphH", "kmh": "KMH"}
_T4_NAMES = {"itq": "ITQ+CNN", "sh": "SH+CNN", "splh": "SPLH+CNN", "lfh": "LFH+CNN"}


def _record(row) -> dict:
    r = row["record"]
    return r if isinstance(r, dict) else json.loads(r)


def regime(record: dict) -> str:
    """``"pretrained (<backbone>)"`` or ``"scratch"`` for one run record (dict)."""
    c = record.get("config", {})
    for key in ("backbone", "features", "descriptor"):
        if c.get(key) == PRETRAINED:
            return f"pretrained ({PRETRAINED})"
    return "scratch"


def with_regime(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` (from :func:`hashrepro.results.load_records`) with a ``regime`` column."""
    out = records.copy()
    out["regime"] = [regime(_record(r)) for _, r in out.iterrows()] if len(out) else []
    for col, default in (("config.task", "retrieval"), ("config.features", "gist"), ("config.backbone", "scratch")):
        out[col] = out[col].fillna(default) if col in out else default
    return out


def _cells(cmp: pd.DataFrame) -> list[str]:
    from ..results import format_mean_std
    return [format_mean_std(m, s, 3, n if n > 1 else None) if n else "not run"
            for m, s, n in zip(cmp["ours_mean"], cmp["ours_std"], cmp["n_seeds"])]


def _regime_rows(records: pd.DataFrame, which: str) -> pd.DataFrame:
    r = with_regime(records)
    keep = r["regime"].str.startswith("pretrained") if which == "pretrained" else r["regime"] == "scratch"
    return r[keep]


def table2(records: pd.DataFrame, which: str = "pretrained", bits=(16, 32, 64)) -> pd.DataFrame:
    """Table 2 (CIFAR-10, mAP@1000) in one regime: columns ``method, bits, paper, ours, delta,
    ours, ties random, n``; DDH first, then the shallow hashers run on the same features."""
    from ..results import compare, companion_column, paper_table

    r = _regime_rows(records, which)
    r = r[(r["dataset"] == "cifar10") & (r["config.task"] == "retrieval") & r["bits"].isin(bits)]
    ddh_name = "ddh" if which == "scratch" else f"ddh-{PRETRAINED}"
    if which == "scratch":
        r = r[(r["method"] == "ddh") | (r["method"].isin(_SHALLOW_NAMES) & (r["config.features"] == "gist"))]
    else:
        r = r[r["method"].isin([ddh_name, *_SHALLOW_NAMES])]
    mm = {ddh_name: "DDH", **_SHALLOW_NAMES}
    t2 = paper_table("ddh_table2")
    cmp = compare(t2, r, metric="map", method_map=mm, how="left")
    cmp = cmp[cmp["method"].isin(["DDH", *_SHALLOW_NAMES.values()]) & cmp["bits"].isin(bits)]
    order = {m: i for i, m in enumerate(["DDH", *_SHALLOW_NAMES.values()])}
    cmp = cmp.assign(_o=cmp["method"].map(order)).sort_values(["_o", "bits"]).drop(columns="_o").reset_index(drop=True)
    out = pd.DataFrame({"method": cmp["method"], "bits": cmp["bits"],
                        "paper": [f"{v:.3f}" for v in cmp["paper"]], "ours": _cells(cmp),
                        "delta": cmp["delta"].round(3),
                        "ours, ties random": companion_column(cmp, r, method_map=mm),
                        "n": cmp["n_seeds"]})
    return out


def table4(records: pd.DataFrame, which: str = "pretrained", bits=(12, 24, 32, 48)) -> pd.DataFrame:
    """Table 4 (shallow hashers on deep features, + DDH) in one regime: ``method, bits, paper, ours, delta, n``.
    Deep features: the ImageNet backbone's (pretrained) or the contrastive backbone's (scratch)."""
    from ..results import compare, paper_table

    r = _regime_rows(records, which)
    r = r[(r["dataset"] == "cifar10") & (r["config.task"] == "retrieval") & r["bits"].isin(bits)]
    ddh_name = "ddh" if which == "scratch" else f"ddh-{PRETRAINED}"
    feats = "contrastive" if which == "scratch" else PRETRAINED
    r = r[(r["method"] == ddh_name) | (r["method"].isin(_T4_NAMES) & (r["config.features"] == feats))]
    mm = {ddh_name: "DDH", **_T4_NAMES}
    cmp = compare(paper_table("ddh_table4"), r, metric="map", method_map=mm, how="outer")
    cmp = cmp[cmp["bits"].isin(bits)]
    order = {m: i for i, m in enumerate(["DDH", *_T4_NAMES.values()])}
    cmp = cmp.assign(_o=cmp["method"].map(order)).sort_values(["_o", "bits"]).drop(columns="_o").reset_index(drop=True)
    return pd.DataFrame({"method": cmp["method"], "bits": cmp["bits"],
                         "paper": [f"{v:.3f}" if pd.notna(v) else "—" for v in cmp["paper"]],
                         "ours": _cells(cmp), "delta": cmp["delta"].round(3), "n": cmp["n_seeds"]})


def table6(records: pd.DataFrame, which: str = "pretrained") -> pd.DataFrame:
    """Table 6 (Flowers-17, linear SVM accuracy % and SVM time) in one regime."""
    from ..results import format_mean_std, paper_table

    r = _regime_rows(records, which)
    r = r[r["config.task"] == "classification"]
    if which == "scratch":
        r = r[~r["method"].astype(str).str.contains(PRETRAINED)]
    names = {f"ddh-{PRETRAINED}": "DDH", "ddh": "DDH", "hog": "HOG", "deepbit": "DeepBit", "dh": "DH",
             PRETRAINED: "ImageNet features (1280-d, real-valued)"}
    t6 = paper_table("ddh_table6")
    rows = []
    for (m, b), g in r.groupby(["method", "bits"]):
        name = names.get(m, m)
        acc = 100 * g["metrics.accuracy"].astype(float)
        tim = g["metrics.svm_time_s"].astype(float)
        p = t6[(t6["method"] == name) & (t6["bits"] == int(b))]
        pa = p[p["metric"] == "accuracy"]["value"]
        pt = p[p["metric"] == "svm_time_s"]["value"]
        rows.append({"descriptor": name + (f" ({int(b)} bits)" if b else ""),
                     "paper acc. (%)": f"{float(pa.iloc[0]):.1f}" if len(pa) else "—",
                     "ours acc. (%)": format_mean_std(acc.mean(), acc.std() if len(acc) > 1 else None, 1,
                                                      len(acc) if len(acc) > 1 else None),
                     "paper SVM time (s)": f"{float(pt.iloc[0]):g}" if len(pt) else "—",
                     "ours SVM time (s)": f"{tim.mean():.3f}", "n": len(g)})
    return pd.DataFrame(rows)


def label_table(records: pd.DataFrame) -> pd.DataFrame:
    """Fig. 2's numbers per label source: K1-NN and expanded precision, positives per image."""
    lab = records[records["method"].astype(str).str.startswith("ddh-labels")]
    rows = []
    for _, row in lab.iterrows():
        d = _record(row)
        m = d["metrics"]
        rows.append({"features": d["config"]["features"], "K1-NN precision": round(m["label_precision_knn"], 3),
                     "expanded precision": round(m["label_precision"], 3),
                     "positives / image (expanded)": round(m["positives_per_item"], 1),
                     "pseudo-label time (s)": round(m["pseudo_label_seconds"], 1), "N": d["protocol"].get("n_train")})
    out = pd.DataFrame(rows)
    return out.sort_values("K1-NN precision", ascending=False).reset_index(drop=True) if len(out) else out
