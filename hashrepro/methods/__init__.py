"""hashrepro.methods: see the submodules (one file per family)."""
