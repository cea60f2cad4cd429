#!/usr/bin/env bash
# Packs what a run on a lent GPU machine needs into .devrun/ at the repository root (ignored by
# git: add `/.devrun/` to .git/info/exclude once): the CUDA test binary and the GPU benchmark, built
# here, stripped of debug info, plus the shared libraries they link that the bare GPU image lacks
# (Abseil, and anything else outside glibc/libstdc++/CUDA). CUDA libraries are not carried: the GPU
# machine's own libcublas/libcudart are found at run time by .devrun/env.sh.
#
#   scripts/pack-gpu-run.sh [BUILD_DIR]      (default build-cuda; build the targets first:
#       cmake --build build-cuda -j2 --target rosetta_cuda_tests gpu_bench)
#
# Then, with the device tool:  run(command: "source .devrun/env.sh && .devrun/rosetta_cuda_tests",
#                                 carry: [".devrun"])
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
build=${1:-build-cuda}
[[ "$build" = /* ]] || build="$root/$build"
out="$root/.devrun"

bins=("$build/tests/rosetta_cuda_tests" "$build/bench/gpu_bench")
for b in "${bins[@]}"; do
  [[ -x "$b" ]] || { echo "missing $b: build it first" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/lib"
for b in "${bins[@]}"; do
  cp "$b" "$out/"
  strip --strip-debug "$out/$(basename "$b")"
done

# Libraries the GPU image provides itself (glibc, the C++ runtime, CUDA, the driver).
system_re='/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*|libcuda|libcudart|libcublas|libcublasLt|libnvidia[^/]*)\.so'
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=>/ && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  if [[ "$lib" =~ $system_re ]]; then continue; fi
  cp -L "$lib" "$out/lib/"
done
strip --strip-debug "$out"/lib/*.so* 2>/dev/null || true

# What was built: the commit, and whether the working tree differed from it.
{
  echo "commit: $(git -C "$root" rev-parse HEAD)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $build"
  echo "uncommitted changes in kernels/ tests/cuda/ bench/: $(git -C "$root" status --short -- kernels tests/cuda bench | wc -l)"
} > "$out/BUILD_INFO"

cat > "$out/env.sh" <<'ENV'
# Sourced on the GPU machine from the repository root: library path and a short environment report.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cublas=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /usr/local /opt /usr/lib -name 'libcublas.so.13' 2>/dev/null | head -1)
cudart=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /usr/local /opt /usr/lib -name 'libcudart.so.13' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$here/lib:$(dirname "${cublas:-/nonexistent/x}"):$(dirname "${cudart:-/nonexistent/x}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cat "$here/BUILD_INFO"
echo "libcublas.so.13: ${cublas:-NOT FOUND}; libcudart.so.13: ${cudart:-NOT FOUND}"
echo "glibc: $(ldd --version | head -1)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader || true
for b in "$here"/rosetta_cuda_tests "$here"/gpu_bench; do
  missing=$(ldd "$b" | grep 'not found' || true)
  [[ -z "$missing" ]] || echo "MISSING for $(basename "$b"): $missing"
done
ENV

du -sh "$out"
ls -la "$out" "$out/lib" | head -60
