#!/usr/bin/env bash
# On the GPU machine (the device tool's `run`, repository root, `carry: [".devcarry"]` filled by
# scripts/prepare_device_carry.sh): the DNNH + DRSCH Table-2 grid (scripts/paper_grid_gpu.sh) inside
# one command of LIMIT_S seconds, records packed for the trip back.
#
#   LIMIT_S=560 bash scripts/device_paper_grid.sh [paper-grid options]
#
# 1. environment: the machine's python3 (torch with CUDA), this tree and .devcarry/site on the path;
#    the tree is checked against .devcarry/manifest.json (records say git_source "manifest");
# 2. CUDA MPS (kernels of the workers overlap) is started only if a CUDA context works under it;
# 3. the pretrained rows' feature cache is extracted on the GPU first (timed);
# 4. the grid gets what is left: --deadline-minutes stops new configurations early enough for the
#    running ones to finish, --budget-minutes shortens the schedules to the same projected time, and
#    a hard `timeout` keeps the packing step inside LIMIT_S whatever happens;
# 5. $OUT/records.tgz (results/<paper>/*.json), $OUT/paper_grid.log and $OUT/device.log come back.
set -u
T0=$(date +%s)
LIMIT_S="${LIMIT_S:-560}"
PACK_S="${PACK_S:-25}"            # kept for packing the records
TAIL_S="${TAIL_S:-100}"           # the longest configuration still running at the deadline
# BUDGET_MINUTES (default: the minutes left before the deadline) is what the schedules are shortened
# to by the projection (hashrepro paper-grid --estimate); set it above the deadline when the
# projection is expected to be pessimistic: seed 0 of everything runs first, so a grid cut by the
# deadline is a complete table with fewer seeds.
: "${OUT:?OUT must name the folder whose files come back}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device.log") 2>&1
elapsed() { echo $(( $(date +%s) - T0 )); }
export PY="${PY:-python3}"
export PYTHONPATH="$PWD:$PWD/.devcarry/site${PYTHONPATH:+:$PYTHONPATH}"
export HASHREPRO_DATA="${HASHREPRO_DATA:-$PWD/.devcarry/datasets}"
export HASHREPRO_CACHE="${HASHREPRO_CACHE:-/tmp/hashrepro_cache}"
export HASHREPRO_TREE_MANIFEST="$PWD/.devcarry/manifest.json"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
GRID_OUT="${GRID_OUT:-/tmp/paper_grid_out}"

echo "== $(date -u +%FT%TZ) device_paper_grid: limit ${LIMIT_S} s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
"$PY" -c "import sys, torch, torchvision, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())" || exit 3
"$PY" -m hashrepro.tree_manifest verify "$HASHREPRO_TREE_MANIFEST" | head -20

export MPS=0
if [ "${USE_MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  # a daemon left by an earlier call on the same (warm) machine is reused, not started twice
  if { echo get_server_list | timeout 5 nvidia-cuda-mps-control >/dev/null 2>&1 || nvidia-cuda-mps-control -d >/dev/null 2>&1; } && \
     timeout 60 "$PY" -c "import torch; torch.zeros(1, device='cuda').add_(1); torch.cuda.synchronize()" >/dev/null 2>&1; then
    echo "MPS: on"
  else
    echo quit | nvidia-cuda-mps-control >/dev/null 2>&1 || true
    echo "MPS: off (the daemon did not start or a CUDA context failed under it)"
  fi
else
  echo "MPS: off"
fi

if [ "${FEATURES:-1}" = 1 ]; then
echo "== $(elapsed) s: features"
"$PY" - "$@" <<'PYEOF' || echo "feature extraction failed (the grid will try again)"
import sys, time
from hashrepro.paper_grid import paper_grid, prepare_features
t = time.perf_counter()
prepare_features(paper_grid(regimes=["efficientnet_lite0"]), log=lambda s: print(s, flush=True))
print(f"features: {time.perf_counter() - t:.1f} s", flush=True)
PYEOF
fi

LEFT=$(( LIMIT_S - $(elapsed) - PACK_S ))
DEADLINE_S=$(( LEFT - TAIL_S ))
if [ "$DEADLINE_S" -lt 60 ]; then echo "only ${LEFT} s left: no grid"; DEADLINE_S=0; fi
if [ "$DEADLINE_S" -gt 0 ]; then
  MIN=$("$PY" -c "print(round($DEADLINE_S / 60, 2))")
  echo "== $(elapsed) s: grid, deadline ${MIN} min, budget ${BUDGET_MINUTES:-$MIN} min, hard stop in ${LEFT} s"
  B="${BUDGET_MINUTES:-$MIN}"; [ "$B" = none ] && B=""      # BUDGET_MINUTES=none: the full schedules
  OUT="$GRID_OUT" DEADLINE_MINUTES="$MIN" BUDGET_MINUTES="$B" \
    timeout -s INT -k 10 "$LEFT" bash scripts/paper_grid_gpu.sh "$@"
  echo "grid exit $? after $(elapsed) s"
fi

echo "== $(elapsed) s: packing"
n=$(find "$GRID_OUT/results" -name '*.json' 2>/dev/null | wc -l)
echo "records: $n"
[ -d "$GRID_OUT/results" ] && tar czf "$OUT/records.tgz" -C "$GRID_OUT" results
[ -f "$GRID_OUT/paper_grid.log" ] && cp "$GRID_OUT/paper_grid.log" "$OUT/"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>&1 | head -2
echo "== done after $(elapsed) s"
