"""hashrepro.plots: see the submodules (one file per family)."""
