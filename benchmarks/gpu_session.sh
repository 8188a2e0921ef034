#!/usr/bin/env bash
# One device session: the GPU benchmarks the README reports, as one script (device time is short).
# Runs on a bare GPU machine whose python3 holds torch: wheels/tarball in .whl are unpacked to /tmp/site
# (ray's wheel is over the transfer limit, so it travels as an xz tarball without its Java jars and rllib).
#   BENCH_SOURCE: an ImageFolder (default .benchdata/photo, a class-proportional 1,024-image PACS photo subset)
set -uo pipefail
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
SRC=${BENCH_SOURCE:-.benchdata/photo}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  [ -f .whl/ray.tar.xz ] && tar -xJf .whl/ray.tar.xz -C /tmp/site
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
command -v make >/dev/null || { echo "no make on this machine"; exit 1; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, timm, ray, open_clip; print('torch', torch.__version__, 'timm', timm.__version__, 'ray', ray.__version__, 'open_clip', open_clip.__version__)"; } 2>&1 | tee "$OUT/env.txt"
make --no-print-directory bench-trainer-gpu PY=python3 2>&1 | tee "$OUT/trainer.log"
cp benchmarks/results/trainer_step_gpu.json "$OUT/" 2>/dev/null
make --no-print-directory bench-generator-gpu PY=python3 BENCH_SOURCE="$SRC" 2>&1 | tee "$OUT/generator.log"
cp benchmarks/results/generator_overhead*.json "$OUT/" 2>/dev/null
exit 0
