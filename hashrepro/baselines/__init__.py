"""Shallow hashing baselines with the scikit-learn estimator API.

>>> from hashrepro.baselines import ITQ
>>> codes = ITQ(n_bits=32, random_state=0).fit(X_train).transform(X_db)   # doctest: +SKIP

Every class takes ``n_bits`` and ``random_state``, learns with ``fit(X, y=None)`` (``y``
required by the supervised ones: ``(n,)`` class ids or ``(n, C)`` multi-hot), and encodes with
``transform(X)`` -> uint8 ``(m, n_bits)`` codes in {0, 1}; ``decision_function(X)`` gives the
real responses. :data:`BASELINES` maps the names used in run records to the classes.

===========  ==========  ====================================================  ===========
name         class       paper                                                 fidelity
===========  ==========  ====================================================  ===========
lsh          LSH         Charikar, STOC 2002 (random hyperplanes)              faithful
pcah         PCAH        Wang, Kumar & Chang, TPAMI 2012                        faithful
itq          ITQ         Gong & Lazebnik, CVPR 2011                             faithful
sh           SH          Weiss, Torralba & Fergus, NIPS 2008                    faithful
sphh         SphH        Heo et al., CVPR 2012                                  faithful
kmh          KMH         He, Wen & Sun, CVPR 2013                               faithful*
itq-cca      ITQCCA      Gong & Lazebnik, CVPR 2011 (supervised)                faithful
ksh          KSH         Liu et al., CVPR 2012                                  faithful
sdh          SDH         Shen et al., CVPR 2015                                 faithful
bre          BRE         Kulis & Darrell, NIPS 2009 (supervised targets)        faithful
mlh          MLH         Norouzi & Fleet, ICML 2011                             faithful*
lfh          LFH         Zhang et al., SIGIR 2014                               faithful*
splh         SPLH        Wang, Kumar & Chang, ICML 2010                         faithful
fasth        FastH       Lin et al., CVPR 2014                                  variant
===========  ==========  ====================================================  ===========

(*) same model and objective, with a documented simplification of the solver or untuned
hyper-parameters; see each class's docstring and ``book/baselines.md``.
"""
from ._base import BaseHasher, PairwiseSimilarity, label_matrix
from .bre import BRE
from .fasth import FastH
from .itq import ITQ, ITQCCA
from .kmh import KMH
from .ksh import KSH
from .lfh import LFH
from .lsh import LSH
from .mlh import MLH
from .pcah import PCAH
from .sdh import SDH
from .sh import SH
from .sphh import SphH, spherical_hamming
from .splh import SPLH

#: run-record name -> estimator class, in the book's order (unsupervised first).
BASELINES = {
    "lsh": LSH,
    "pcah": PCAH,
    "itq": ITQ,
    "sh": SH,
    "sphh": SphH,
    "kmh": KMH,
    "itq-cca": ITQCCA,
    "ksh": KSH,
    "sdh": SDH,
    "bre": BRE,
    "mlh": MLH,
    "lfh": LFH,
    "splh": SPLH,
    "fasth": FastH,
}

UNSUPERVISED = tuple(k for k, v in BASELINES.items() if not v.supervised)
SUPERVISED = tuple(k for k, v in BASELINES.items() if v.supervised)


def get(name: str, **params) -> BaseHasher:
    """Instantiate a baseline by its run-record name (``"itq"``, ``"itq-cca"``, ...)."""
    key = name.lower()
    if key not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid names are: {', '.join(BASELINES)}")
    return BASELINES[key](**params)


__all__ = ["BaseHasher", "PairwiseSimilarity", "label_matrix", "BASELINES", "SUPERVISED", "UNSUPERVISED",
           "get", "spherical_hamming", *[c.__name__ for c in BASELINES.values()]]
