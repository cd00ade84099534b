"""DRSCH's claims (Zhang et al., TIP 2015) as data, with the BS-DRSCH truncation curves they read."""
from __future__ import annotations

from .evaluator import _C10, _TOL, RANDOM_SUBSET_KEY, Claim, Compare, Side, paper_value

__all__ = ["DRSCH"]

_BASE_DRSCH = {"paper": "baselines", "config.protocol": "drsch"}


#: DRSCH on the ImageNet backbone with the schedule chosen on a validation split whose database is the
#: training rows (results/validation, the slope grid: a fixed slope; named by
#: :func:`hashrepro.methods.drsch.method_name`).
TUNED_ON_TRAINING_ROWS = "drsch-slope_factor-1-efficientnet_lite0"
#: ... and chosen with a held-out validation database (the head-width grid, then the slope grid on it:
#: a 2,048-unit head, slope growth kept).
TUNED_ON_HELD_OUT = "drsch-head_hidden-2048-efficientnet_lite0"
#: ... and the weight decay chosen on top of that head with the same held-out validation database (0.05).
WEIGHT_DECAY_ON_HELD_OUT = "drsch-head_hidden-2048-weight_decay-0.05-efficientnet_lite0"
#: ... and the same head with the backbone's last block fine-tuned (``finetune="last_block"``: set on top of
#: that choice, not selected on validation).
LAST_BLOCK_TUNED = "drsch-head_hidden-2048-lastblock-efficientnet_lite0"
#: ... and the weight decay chosen on validation (0.05) with the last block fine-tuned on top (the block set,
#: not selected; the weight decay selected on the frozen head).
WEIGHT_DECAY_LAST_BLOCK = "drsch-head_hidden-2048-weight_decay-0.05-lastblock-efficientnet_lite0"
#: DRSCH and BS-DRSCH with the released solver (lr 1/300, no momentum, no clipping) at the pretrained
#: regime's 3,000 iterations (``solver="paper"``, :func:`hashrepro.methods.drsch.paper_solver`).
#: What the claims on :data:`WEIGHT_DECAY_LAST_BLOCK` say when no run exists.
_WD_LASTBLOCK_MISSING = ("needs the runs (hashrepro sweep drsch ... -p backbone efficientnet_lite0 -p head_hidden [2048] "
                         "-p weight_decay 0.05 -p finetune last_block)")
PAPER_SOLVER_DRSCH = "drsch-solver-paper-efficientnet_lite0"
PAPER_SOLVER_BS = "bs-drsch-solver-paper-efficientnet_lite0"


def _pt_quoted_map(claim_id: str, method: str, setting: str, label: str, missing: str, note: str) -> Claim:
    """A pretrained-regime DRSCH setting (``setting``, in the claim's brackets) against the quoted
    CIFAR-10 MAP, within 0.02 or above; ``method`` names its runs."""
    return Claim(claim_id, "drsch", f"[ImageNet backbone, {setting}] DRSCH's MAP on CIFAR-10 as quoted by later "
                 "work (within 0.02 or above)",
                 (Compare(Side(method, where=_C10, label=label), paper_value("drsch_quoted", "drsch", "cifar10"),
                          margin=-_TOL, label="ours − quoted + 0.02"),), missing=missing, note=note)


def _quoted_best() -> Side:
    """The best MAP later work quotes for DRSCH on CIFAR-10 at any code length (0.631 at 48 bits), as one
    constant for every length: issue 15's target for the pretrained regime."""
    quoted = paper_value("drsch_quoted", "drsch", "cifar10").const or {}
    return Side(const=max(quoted.values()) if quoted else {}, label="quoted best")


def _bs_curve(key_fn):
    """A BS-DRSCH record's truncated values {n: value} for n below the trained length."""
    def f(record):
        c = (record.get("curves") or {}).get("bit_scalable")
        if not c:
            return None
        key = key_fn(c)
        if key not in c:
            return None
        trained = int((record.get("protocol") or {}).get("bits_trained", record.get("bits", 0)))
        return {int(n): v for n, v in zip(c["bits"], c[key]) if int(n) < trained}
    return f


_truncated = _bs_curve(lambda c: "precision_at_500")
_truncated_random = _bs_curve(lambda c: RANDOM_SUBSET_KEY)


DRSCH = (
    Claim("drsch-quoted-map", "drsch", "DRSCH's MAP on CIFAR-10 as quoted by later work (within 0.02)",
          (Compare(Side("drsch", where=_C10), paper_value("drsch_quoted", "drsch", "cifar10"), margin=-_TOL,
                   label="ours − quoted + 0.02"),)),
    Claim("dsch-quoted-map", "drsch", "DSCH's MAP on CIFAR-10 as quoted by later work (within 0.02)",
          (Compare(Side("dsch", where=_C10), paper_value("drsch_quoted", "dsch", "cifar10"), margin=-_TOL,
                   label="ours − quoted + 0.02"),)),
    Claim("drsch-vs-dsch", "drsch", "DRSCH beats DSCH (the regulariser helps; mAP, Hamming ranking)",
          (Compare(Side("drsch"), Side("dsch"), label="DRSCH − DSCH"),)),
    Claim("drsch-vs-shallow", "drsch", "DRSCH beats KSH / BRE / MLH",
          tuple(Compare(Side("drsch", where={"paper": "drsch"}), Side(m, where=_BASE_DRSCH),
                        label=f"DRSCH − {m.upper()}") for m in ("ksh", "bre", "mlh")),
          missing="no baseline records on this chapter's protocol"),
    Claim("bs-drsch-truncation", "drsch",
          "truncated BS-DRSCH codes keep most (≥ 95%) of the Precision@500 of DRSCH trained at that length",
          (Compare(Side("bs-drsch", metric=_truncated, label="BS-DRSCH truncated"),
                   Side("drsch", metric="precision_at_500", factor=0.95, label="0.95 × DRSCH"),
                   label="truncated − 0.95 × trained"),)),
    Claim("bs-drsch-weights", "drsch",
          "the learned bit weights pick the bits to keep: the top-|w| bits beat a random subset of as many bits",
          (Compare(Side("bs-drsch", metric=_truncated, label="top |w|"),
                   Side("bs-drsch", metric=_truncated_random, label="random bits"), label="top |w| − random"),),
          missing=("the BS-DRSCH records have no random-bit-subset control yet (expected: "
                   f"curves['bit_scalable']['{RANDOM_SUBSET_KEY}'], aligned with its 'bits')")),
    Claim("drsch-offline", "drsch", "NUS-WIDE, CIFAR-20 (Figs. 3–4) and CUHK03 re-identification (Table 1)",
          untestable="not run: data not available offline"),
) + (
    # the pretrained regime (issue 15): DRSCH's head, weighted hash layer and loss on the frozen ImageNet backbone
    Claim("drsch-pt-quoted-map", "drsch", "[ImageNet backbone] DRSCH's MAP on CIFAR-10 as quoted by later work "
          "(within 0.02 or above)",
          (Compare(Side("drsch-efficientnet_lite0", where=_C10), paper_value("drsch_quoted", "drsch", "cifar10"),
                   margin=-_TOL, label="ours − quoted + 0.02"),)),
    _pt_quoted_map("drsch-pt-tuned-map", TUNED_ON_TRAINING_ROWS,
                   "schedule chosen on a validation split of training rows: a fixed slope", "DRSCH, chosen schedule",
                   "needs runs with the schedule chosen on validation (hashrepro select drsch ... --grid "
                   "slope_factor=1.1,1.05,1.0, then -p slope_factor 1.0 -p backbone efficientnet_lite0)",
                   "a deviation: the chosen values are named in the runs' method names"),
    _pt_quoted_map("drsch-pt-heldout-map", TUNED_ON_HELD_OUT,
                   "head chosen with a held-out validation database: 2,048 units", "DRSCH, chosen head",
                   "needs the runs with the chosen head (hashrepro sweep drsch ... -p backbone efficientnet_lite0 "
                   "-p head_hidden [2048])",
                   "a deviation: the chosen values are named in the runs' method names; chosen at 32 bits, seed 0, "
                   "with 100 training images per class held out as the validation database"),
    _pt_quoted_map("drsch-pt-weight-decay-map", WEIGHT_DECAY_ON_HELD_OUT,
                   "weight decay chosen with a held-out validation database: 0.05 on the 2,048-unit head",
                   "DRSCH, chosen weight decay",
                   "needs the runs with the chosen weight decay (hashrepro sweep drsch ... -p backbone efficientnet_lite0 "
                   "-p head_hidden [2048] -p weight_decay 0.05)",
                   "a deviation: the chosen values are named in the runs' method names; chosen at 32 bits, seed 0, "
                   "with 100 training images per class held out as the validation database (by +0.002 of validation "
                   "mAP, inside the 0.006 the same configuration moved between two feature extractions)"),
    Claim("drsch-pt-weight-decay-vs-head", "drsch", "[ImageNet backbone, 2,048-unit head] the weight decay chosen "
          "on validation (0.05) raises DRSCH's MAP over the preset's 0.0005 (same head, schedule and seeds)",
          (Compare(Side(WEIGHT_DECAY_ON_HELD_OUT, where=_C10, label="weight decay 0.05"),
                   Side(TUNED_ON_HELD_OUT, where=_C10, label="weight decay 0.0005"), label="0.05 − 0.0005"),),
          missing="needs runs of both (-p head_hidden [2048], with and without -p weight_decay 0.05)"),
    _pt_quoted_map("drsch-pt-lastblock-map", LAST_BLOCK_TUNED,
                   "its last block fine-tuned under the 2,048-unit head", "DRSCH, last block tuned",
                   "needs the runs with the last block fine-tuned (hashrepro sweep drsch ... -p backbone "
                   "efficientnet_lite0 -p head_hidden [2048] -p finetune last_block)",
                   "a deviation: only the backbone's last block and head conv train (the paper trains the whole "
                   "network); set on top of the head chosen on validation, not selected itself"),
    Claim("drsch-pt-lastblock-vs-frozen", "drsch", "[ImageNet backbone, 2,048-unit head] fine-tuning the "
          "backbone's last block raises DRSCH's MAP over the frozen backbone (same head, schedule and seeds)",
          (Compare(Side(LAST_BLOCK_TUNED, where=_C10, label="last block tuned"),
                   Side(TUNED_ON_HELD_OUT, where=_C10, label="frozen"), label="tuned − frozen"),),
          missing="needs runs of both (-p head_hidden [2048], with and without -p finetune last_block)"),
    _pt_quoted_map("drsch-pt-weight-decay-lastblock-map", WEIGHT_DECAY_LAST_BLOCK,
                   "weight decay 0.05 chosen on validation, its last block fine-tuned under the 2,048-unit head",
                   "DRSCH, weight decay 0.05, last block tuned",
                   _WD_LASTBLOCK_MISSING,
                   "a deviation: only the backbone's last block and head conv train (the paper trains the whole "
                   "network); the weight decay chosen on validation on the frozen head, the tuned block set on top"),
    Claim("drsch-pt-weight-decay-lastblock-at-quoted", "drsch", "[ImageNet backbone, weight decay 0.05, last "
          "block fine-tuned] DRSCH's MAP on CIFAR-10 above the number quoted at the same code length",
          (Compare(Side(WEIGHT_DECAY_LAST_BLOCK, where=_C10, label="DRSCH, weight decay 0.05, last block tuned"),
                   paper_value("drsch_quoted", "drsch", "cifar10"), label="ours − quoted"),),
          missing=_WD_LASTBLOCK_MISSING),
    Claim("drsch-pt-weight-decay-lastblock-best", "drsch", "[ImageNet backbone, weight decay 0.05, last block "
          "fine-tuned] DRSCH's MAP on CIFAR-10 above the best quoted number (0.631, 48 bits) at every length",
          (Compare(Side(WEIGHT_DECAY_LAST_BLOCK, where=_C10, label="DRSCH, weight decay 0.05, last block tuned"),
                   _quoted_best(), label="ours − quoted best"),),
          missing=_WD_LASTBLOCK_MISSING,
          note="issue 15's target for the pretrained regime: one number for every length, the quoted 48-bit MAP"),
    Claim("drsch-pt-weight-decay-lastblock-vs-frozen", "drsch", "[ImageNet backbone, 2,048-unit head, weight "
          "decay 0.05] fine-tuning the backbone's last block raises DRSCH's MAP over the frozen backbone (same "
          "head, schedule and seeds)",
          (Compare(Side(WEIGHT_DECAY_LAST_BLOCK, where=_C10, label="last block tuned"),
                   Side(WEIGHT_DECAY_ON_HELD_OUT, where=_C10, label="frozen"), label="tuned − frozen"),),
          missing="needs runs of both (-p head_hidden [2048] -p weight_decay 0.05, with and without "
                  "-p finetune last_block)"),
    Claim("dsch-pt-quoted-map", "drsch", "[ImageNet backbone] DSCH's MAP on CIFAR-10 as quoted by later work "
          "(within 0.02 or above)",
          (Compare(Side("dsch-efficientnet_lite0", where=_C10), paper_value("drsch_quoted", "dsch", "cifar10"),
                   margin=-_TOL, label="ours − quoted + 0.02"),)),
    Claim("drsch-pt-vs-dsch", "drsch", "[ImageNet backbone] DRSCH beats DSCH (the regulariser helps; mAP, Hamming ranking)",
          (Compare(Side("drsch-efficientnet_lite0"), Side("dsch-efficientnet_lite0"), label="DRSCH − DSCH"),)),
    Claim("bs-drsch-pt-truncation", "drsch",
          "[ImageNet backbone] truncated BS-DRSCH codes keep most (≥ 95%) of the Precision@500 of DRSCH trained "
          "at that length",
          (Compare(Side("bs-drsch-efficientnet_lite0", metric=_truncated, label="BS-DRSCH truncated"),
                   Side("drsch-efficientnet_lite0", metric="precision_at_500", factor=0.95, label="0.95 × DRSCH"),
                   label="truncated − 0.95 × trained"),)),
    Claim("bs-drsch-pt-weights", "drsch",
          "[ImageNet backbone] the learned bit weights pick the bits to keep: the top-|w| bits beat a random subset",
          (Compare(Side("bs-drsch-efficientnet_lite0", metric=_truncated, label="top |w|"),
                   Side("bs-drsch-efficientnet_lite0", metric=_truncated_random, label="random bits"),
                   label="top |w| − random"),),
          missing=f"needs BS-DRSCH records with curves['bit_scalable']['{RANDOM_SUBSET_KEY}']"),
    # the same two claims with the released solver at the CPU's length (``-p solver paper``), the setting in
    # which the bits stay alive (the dead-bits controls): a deviation, named in the runs' method names
    Claim("bs-drsch-pt-paper-solver-truncation", "drsch",
          "[ImageNet backbone, the released solver at 3,000 iterations] truncated BS-DRSCH codes keep most "
          "(≥ 95%) of the Precision@500 of DRSCH trained at that length",
          (Compare(Side(PAPER_SOLVER_BS, metric=_truncated, label="BS-DRSCH truncated"),
                   Side(PAPER_SOLVER_DRSCH, metric="precision_at_500", factor=0.95, label="0.95 × DRSCH"),
                   label="truncated − 0.95 × trained"),),
          missing="needs BS-DRSCH at 64 bits and DRSCH at the kept lengths with -p solver paper "
                  "(-p backbone efficientnet_lite0)",
          note="a deviation from the paper's 800,000 iterations: the released solver's settings at 3,000"),
    Claim("bs-drsch-pt-paper-solver-weights", "drsch",
          "[ImageNet backbone, the released solver at 3,000 iterations] the learned bit weights pick the bits to "
          "keep: the top-|w| bits beat a random subset",
          (Compare(Side(PAPER_SOLVER_BS, metric=_truncated, label="top |w|"),
                   Side(PAPER_SOLVER_BS, metric=_truncated_random, label="random bits"),
                   label="top |w| − random"),),
          missing="needs BS-DRSCH runs at 64 bits with -p solver paper (-p backbone efficientnet_lite0)",
          note="a deviation from the paper's 800,000 iterations: the released solver's settings at 3,000"),
) + (
    # issue 18: the DSRH baseline (Zhao et al. 2015) re-run here: its loss and hash layer on DRSCH's network and
    # schedule (variant "dsrh"), in both regimes
    Claim("drsch-vs-dsrh", "drsch", "DRSCH beats DSRH (mAP, Hamming ranking; same network and schedule)",
          (Compare(Side("drsch"), Side("dsrh"), label="DRSCH − DSRH"),),
          missing="needs runs of variant dsrh (notebooks/drsch.ipynb -p variant dsrh)"),
    Claim("drsch-pt-vs-dsrh", "drsch", "[ImageNet backbone] DRSCH beats DSRH (mAP, Hamming ranking)",
          (Compare(Side("drsch-efficientnet_lite0"), Side("dsrh-efficientnet_lite0"), label="DRSCH − DSRH"),),
          missing="needs runs of variant dsrh on the ImageNet backbone (-p variant dsrh -p backbone efficientnet_lite0)"),
)
