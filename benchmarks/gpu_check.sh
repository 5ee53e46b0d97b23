#!/usr/bin/env bash
# GPU acceptance check (issue 19): build the kernels, run the CUDA tests, time kernel vs reference,
# time a short --cfg=paper256 run; one JSON in OUT_DIR/gpu_check.json. At most 8 minutes.
#   bash benchmarks/gpu_check.sh [OUT_DIR] [extra args for gpu_check.py, e.g. --smoke]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu_check}"; shift || true
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null 2>&1; then
    CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; export CUDA_HOME
fi
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    # Build for the GPU that is here (e.g. 9.0 on an H100/H200) instead of every architecture.
    arch="$(python -c 'import torch; c = torch.cuda.get_device_capability() if torch.cuda.is_available() else None; print(f"{c[0]}.{c[1]}" if c else "")' 2>/dev/null)"
    [ -n "$arch" ] && export TORCH_CUDA_ARCH_LIST="$arch"
fi
export PYTHONUNBUFFERED=1
exec timeout 480 python benchmarks/gpu_check.py --out "$out" "$@"
