"""hashrepro.plots.ddh (the chapter page's sections): what book/ddh.md shows, on small hand-made records."""
import json

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
from IPython.display import Markdown  # noqa: E402

from hashrepro.plots import ddh as D  # noqa: E402
from hashrepro.results import load_records, paper_table  # noqa: E402

CFG = {"task": "retrieval", "features": "gist", "method": "ddh", "init": "contrastive", "iterations": 800,
       "backbone": "scratch", "descriptor": "codes", "dh_input": "backbone"}
PROTO = {"n_train": 50000, "n_query": 10000, "n_database": 50000, "topk": 1000}
FLOWERS = {"n_train": 680, "n_val": 340, "n_test": 340}


def _pr(p=0.5):
    return {"radius": [0, 1, 2], "precision": [p, p - 0.1, p - 0.2], "recall": [0.1, 0.3, 0.6]}


def _rec(method, bits=32, seed=0, dataset="cifar10", config=None, metrics=None, curves=None, protocol=None,
         legacy=False, old=False):
    """A DDH-chapter run record; ``old``: written before task/features/backbone/... existed."""
    cfg = {**CFG, **(config or {})}
    if old:
        cfg = {k: v for k, v in cfg.items() if k not in ("task", "features", "backbone", "descriptor", "dh_input",
                                                         "method")}
    r = {"schema": 1, "paper": "ddh", "method": method, "dataset": dataset, "bits": bits, "seed": seed,
         "scale": "default", "config": cfg, "protocol": {**(PROTO if dataset == "cifar10" else FLOWERS), **(protocol or {})},
         "metrics": {"map": 0.3, "cpu_time_s": 12.34, **(metrics or {})}, "curves": curves or {}, "complete": True,
         "device": "cpu", "wall_time_s": 20.06, "started": "2026-11-01T00:00:00+00:00",
         "finished": f"2026-11-01T00:0{seed}:00+00:00", "git_commit": "0" * 40, "git_dirty": False,
         "git_read_at": "start", "command": f"hashrepro sweep ddh --dataset {dataset} --bits {bits} --seeds {seed}"}
    if legacy:
        r.update(git_dirty=True, command=None)
        del r["git_read_at"]
    return r


def _frame(tmp_path, recs):
    d = tmp_path / "ddh"
    d.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(recs):
        (d / f"r{i}.json").write_text(json.dumps(r))
    return load_records(d)


def _page(tmp_path, recs):
    return D.page_records(_frame(tmp_path, recs))


def _md_texts(items):
    return [o.data for o in items if isinstance(o, Markdown)]


# --------------------------------------------------------------------------- records
def test_page_records_without_records(tmp_path):
    empty = load_records(tmp_path / "none")
    R = D.page_records(empty)
    assert not R.have and R.records is empty
    assert all(len(getattr(R, f)) == 0 for f in ("retr", "cifar", "hash_runs", "ddh_cifar", "label_runs",
                                                 "base_runs", "deep_runs", "t4_runs", "flower_runs"))


def test_page_records_splits_and_fills_old_records(tmp_path):
    recs = [_rec("ddh", old=True), _rec("itq"), _rec("itq", config={"features": "contrastive"}),
            _rec("splh", config={"features": "contrastive"}), _rec("dh"), _rec("deepbit"),
            _rec("ddh-labels-gist", bits=0), _rec("ddh", dataset="flowers17", config={"task": "classification"}),
            _rec("efficientnet_lite0", bits=0, dataset="flowers17",
                 config={"task": "classification", "descriptor": "efficientnet_lite0"}),
            _rec("ddh", dataset="mnist5k")]
    frame = _frame(tmp_path, recs)
    R = D.page_records(frame)
    assert R.have
    assert R.records.loc[0, "config.task"] == "retrieval" and R.records.loc[0, "config.backbone"] == "scratch"
    assert frame["config.task"].isna().any()  # the caller's frame is left as it was
    assert sorted(R.hash_runs["dataset"]) == ["cifar10", "mnist5k"] and len(R.retr) == 8 and len(R.cifar) == 7
    assert list(R.ddh_cifar["method"]) == ["ddh"]
    assert list(R.base_runs["method"]) == ["itq"] and set(R.t4_runs["method"]) == {"itq", "splh"}
    assert sorted(R.deep_runs["method"]) == ["deepbit", "dh"] and list(R.label_runs["method"]) == ["ddh-labels-gist"]
    assert list(R.flower_runs["method"]) == ["ddh"]  # the ImageNet descriptor has its own table


def test_deep_variant_renames_dh_on_gist_only(tmp_path):
    R = _page(tmp_path, [_rec("dh"), _rec("dh", bits=16, config={"dh_input": "gist"}), _rec("deepbit")])
    out = D.deep_variant(R.deep_runs)
    assert sorted(out["method"]) == ["deepbit", "dh", "dh-gist"]
    assert sorted(R.deep_runs["method"]) == ["deepbit", "dh", "dh"]


# --------------------------------------------------------------------------- protocol
def test_protocol_outputs(tmp_path):
    assert _md_texts(D.protocol_outputs(D.page_records(load_records(tmp_path / "none")))) == [D.NONE]
    recs = [_rec("ddh"), _rec("dh", bits=16, config={"dh_input": "gist"}), _rec("deepbit"),
            _rec("hog", bits=0, dataset="flowers17", config={"task": "classification", "descriptor": "hog"})]
    table, note = D.protocol_outputs(_page(tmp_path, recs))
    assert list(table["method"]) == ["ddh", "deepbit", "dh", "hog"]  # sorted by dataset, method, bits, seed
    assert list(table["labels / input"]) == ["gist labels", "no labels", "GIST (MLP)", "hog descriptor"]
    assert table.loc[0, "train / query / db"] == "50000 / 10000 / 50000"
    assert table.loc[3, "train / query / db"] == "680 / 340 / 340 (train / val / test)"
    assert table.loc[0, "wall (s)"] == 20.1 and table.loc[0, "CPU (s)"] == 12.3
    assert note.data.startswith("Wall times include waiting")
    only_labels = D.protocol_outputs(_page(tmp_path / "l", [_rec("ddh-labels-gist", bits=0)]))
    assert _md_texts(only_labels)[0] == "No hashing runs yet."


# --------------------------------------------------------------------------- ImageNet backbone
PT = {"backbone": "efficientnet_lite0", "features": "efficientnet_lite0", "init": "imagenet", "iterations": 19500,
      "batch_size": 128, "optimizer": "sgd", "lr": 0.001, "head_hidden": None}


def test_pretrained_outputs_without_and_with_runs(tmp_path):
    none = D.pretrained_outputs(_page(tmp_path, [_rec("ddh")]))
    assert len(none) == 1 and none[0].data.startswith("No ImageNet-backbone runs yet")
    recs = [_rec("ddh-efficientnet_lite0", bits=16, seed=s, config=PT, metrics={"backbone_input_size": 160.0},
                 protocol={"backbone": "efficientnet_lite0 (ImageNet, frozen)"}, legacy=True) for s in range(2)]
    out = D.pretrained_outputs(_page(tmp_path / "p", recs))
    texts = _md_texts(out)
    assert texts[0] == ("**Protocol of the DDH rows**: efficientnet_lite0 (ImageNet, frozen), input 160 px, "
                        "normalisation tf_lite; head `none` + hash layer, 19500 iterations of 128 (sgd, lr 0.001); "
                        "the features are extracted once per dataset and read from the cache by every run.")
    t2 = out[2]
    row = t2[(t2["method"] == "DDH") & (t2["bits"] == 16)].iloc[0]
    assert row["n"] == 2 and row["ours"].startswith("0.300")
    claims = out[-1]
    assert len(claims) and claims["claim"].str.startswith("[ImageNet backbone]").all()
    assert "reproduced" not in set(claims["verdict"])  # legacy-only records decide nothing


# --------------------------------------------------------------------------- Fig. 2, Table 2, Fig. 3
LP = {"label_precision_knn": 0.41, "label_precision": 0.38, "positives_per_item": 60.04,
      "pseudo_label_seconds": 3.21, "knn_dim": 128}


def test_label_quality(tmp_path):
    table, curves = D.label_quality(_page(tmp_path, [_rec("ddh")]))
    assert table.data.startswith("No label-quality records yet") and curves == {}
    curve = {"k": [5, 15], "knn_precision": [0.5, 0.4], "expanded_precision": [0.45, 0.38],
             "knn_positives": [5, 15], "expanded_positives": [20, 60]}
    recs = [_rec("ddh-labels-gist", bits=0, metrics=LP, curves={"label_precision": curve}),
            _rec("ddh-labels-pixels", bits=0, config={"features": "pixels"}, metrics={**LP, "label_precision_knn": 0.2})]
    table, curves = D.label_quality(_page(tmp_path / "l", recs))
    assert list(table["features"]) == ["gist", "pixels"]  # best K1-NN precision first
    assert table.loc[0, "positives / image (expanded)"] == 60.0 and table.loc[0, "N"] == 50000
    assert np.isnan(table.loc[0, "feature time (s)"])
    assert list(curves) == ["gist"]


def test_table2_outputs_without_ddh_shows_the_paper(tmp_path):
    out = D.table2_outputs(_page(tmp_path, [_rec("lsh")]))
    assert out[0].data == D.NONE and "DDH" in out[1].index and list(out[1].columns) == [16, 32, 64]


def test_table2_outputs_ours_beside_paper(tmp_path):
    recs = [_rec("ddh", bits=16, metrics={"map": 0.3, "map_tie_aware": 0.28}),
            _rec("lsh", bits=16, seed=0, metrics={"map": 0.2}), _rec("lsh", bits=16, seed=1, metrics={"map": 0.3}),
            _rec("dh", bits=32, config={"dh_input": "gist"}, metrics={"map": 0.15}),
            _rec("ddh", bits=12)]  # not a Table 2 length
    cmp, head, wide = D.table2_outputs(_page(tmp_path, recs))
    assert list(cmp.columns) == ["method", "bits", "paper", "ours", "delta", "ours, ties random", "ours: input"]
    ddh16 = cmp[(cmp["method"] == "DDH") & (cmp["bits"] == 16)].iloc[0]
    assert (ddh16["ours"], ddh16["ours: input"], ddh16["ours, ties random"]) == (
        "0.300", "gist labels, init contrastive", "0.280 (n=1)")
    lsh16 = cmp[(cmp["method"] == "LSH") & (cmp["bits"] == 16)].iloc[0]
    assert lsh16["ours"] == f"0.250 ± {np.std([0.2, 0.3], ddof=1):.3f} (n=2)" and lsh16["ours, ties random"] == "—"
    gist = cmp[cmp["method"] == "DH (GIST MLP)"].iloc[0]
    assert (gist["bits"], gist["paper"], gist["ours: input"]) == (32, "—", "GIST, MLP")
    assert cmp[(cmp["method"] == "DeepBit") & (cmp["bits"] == 64)].iloc[0]["ours: input"] == "not run"
    paper_rows = list(paper_table("ddh_table2")["method"].unique()) + ["DH (GIST MLP)"]
    assert set(cmp["bits"]) == {16, 32, 64} and list(dict.fromkeys(cmp["method"])) == paper_rows  # the paper's order
    assert head.data == "The same, ours only, one column per code length:"
    assert wide.loc["LSH", 16] == f"0.250 ± {np.std([0.2, 0.3], ddof=1):.3f}"  # n dropped in the wide table


def test_pr_curves_by_bits_and_missing_note(tmp_path):
    assert D.pr_curves_by_bits(_page(tmp_path, [_rec("lsh", curves={"pr_radius": _pr()})])) == {}
    assert D.pr_missing(_page(tmp_path / "a", [_rec("lsh")])).data == D.NONE
    recs = [_rec("ddh", curves={"pr_radius": _pr()}), _rec("ddh", seed=1, curves={"pr_radius": _pr(0.9)}),
            _rec("itq", curves={"pr_radius": _pr(0.4)}), _rec("ddh", bits=12, curves={"pr_radius": _pr()}),
            _rec("dh", curves={"pr_radius": _pr()}), _rec("dh", bits=16, config={"dh_input": "gist"},
                                                          curves={"pr_radius": _pr()})]
    R = _page(tmp_path / "b", recs)
    by_bits = D.pr_curves_by_bits(R)
    assert sorted(by_bits) == [32] and sorted(by_bits[32]) == ["DDH", "DH", "PCA-ITQ"]
    assert by_bits[32]["DDH"]["precision"][0] == 0.5  # seed 0 only
    assert D.pr_missing(_page(tmp_path / "c", [_rec("ddh")])).data == "No CIFAR-10 runs with P/R curves yet."


# --------------------------------------------------------------------------- Tables 4 and 6
def test_table4_outputs(tmp_path):
    none = D.table4_outputs(_page(tmp_path, [_rec("lsh")]))
    assert none[0].data.startswith("No Table 4 runs yet") and "ITQ+CNN" in none[1].index
    recs = [_rec("itq", bits=12, config={"features": "contrastive"}, metrics={"map": 0.31}),
            _rec("itq", bits=12, metrics={"map": 0.2}),  # the same hasher on GIST (a Table 2 run)
            _rec("splh", bits=24, config={"features": "contrastive"}, metrics={"map": 0.4})]
    (t,) = D.table4_outputs(_page(tmp_path / "t", recs))
    itq = t[(t["method"] == "ITQ+CNN") & (t["bits"] == 12)].iloc[0]
    assert (itq["ours"], itq["same hasher on GIST"], itq["supervision"]) == ("0.310", "0.200", "none")
    splh = t[(t["method"] == "SPLH+CNN") & (t["bits"] == 24)].iloc[0]
    assert splh["supervision"] == "class labels (5,000 images)" and splh["same hasher on GIST"] == "—"
    assert t[(t["method"] == "DDH") & (t["bits"] == 48)].iloc[0]["ours"] == "—"


FL = {"task": "classification"}


def test_table6_outputs(tmp_path):
    assert _md_texts(D.table6_outputs(_page(tmp_path, [_rec("ddh")])))[0] == "No Table 6 runs yet (commands below)."
    svm = {"descriptor_dim": 64, "svm_C": 1.0, "val_accuracy": 0.5}
    recs = [_rec("ddh", bits=64, seed=0, dataset="flowers17", config=FL,
                 metrics={"accuracy": 0.40, "svm_time_s": 0.02, "label_precision": 0.3333, **svm}),
            _rec("ddh", bits=64, seed=1, dataset="flowers17", config=FL,
                 metrics={"accuracy": 0.50, "svm_time_s": 0.04, **svm}),
            _rec("hog", bits=0, dataset="flowers17", config={**FL, "descriptor": "hog"},
                 metrics={"accuracy": 0.3, "svm_time_s": 0.5, **svm})]
    main, head, per_run = D.table6_outputs(_page(tmp_path / "f", recs))
    ddh = main[main["descriptor"] == "DDH (64 bits)"].iloc[0]
    assert ddh["ours acc. (%)"] == f"45.0 ± {100 * np.std([0.4, 0.5], ddof=1):.1f}" and ddh["ours SVM time (s)"] == "0.030"
    assert main[main["descriptor"] == "HOG"].iloc[0]["ours acc. (%)"] == "30.0"  # one seed: no std
    assert main[main["descriptor"] == "DeepBit (256 bits)"].iloc[0]["ours acc. (%)"] == "not run"
    assert head.data.startswith("Per run: descriptor dimension")
    assert list(per_run["descriptor"]) == ["DDH (64 bits)", "DDH (64 bits)", "HOG"]
    assert list(per_run["label precision"]) == [0.333, "—", "—"] and per_run.loc[0, "val acc. (%)"] == 50.0


def test_other_paper_tables():
    out = D.other_paper_tables()
    assert [o.data.split("**")[1][:7] for o in out[::2]] == ["Table 3", "Table 5"]
    assert all(isinstance(t, pd.DataFrame) and len(t) for t in out[1::2])


# --------------------------------------------------------------------------- claims and seeds
def test_claims_outputs_legacy_only(tmp_path):
    records = _frame(tmp_path, [_rec("ddh", bits=16, legacy=True), _rec("lsh", bits=16, legacy=True)])
    table, how = D.claims_outputs(records)
    assert "verdict" in table.columns and "reproduced" not in set(table["verdict"])
    assert how.data.startswith("**How a verdict is reached.** ")
    assert "Of 2 run records, 0 are clean, 0 ran on a dirty tree with the diff saved, and 2 are *legacy*" in how.data


def test_few_seeds_sentence(tmp_path):
    assert D.few_seeds_sentence(load_records(tmp_path / "none")) is None
    recs = [_rec("ddh", bits=16), _rec("ddh", bits=32, seed=0), _rec("ddh", bits=32, seed=1, legacy=True),
            _rec("lsh", bits=16, seed=0)] + [_rec("itq", bits=16, seed=s) for s in range(3)]
    text = D.few_seeds_sentence(_frame(tmp_path, recs)).data
    assert text == ("Settings with fewer than 3 seeds (3 of 4; bits: seeds): **ddh** cifar10 16: 0, 32: 0/1; "
                    "**lsh** cifar10 16: 0.")
    full = D.few_seeds_sentence(_frame(tmp_path / "f", [_rec("itq", bits=16, seed=s) for s in range(3)])).data
    assert full == "Every setting has at least 3 seeds (1 settings)."
