"""hashrepro.losses: see the submodules (one file per family)."""
