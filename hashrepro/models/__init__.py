"""hashrepro.models: see the submodules (one file per family)."""
