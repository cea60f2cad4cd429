#!/usr/bin/env bash
# Packs what a run on a lent GPU machine needs into .devrun/ at the repository root (ignored by
# git: add `/.devrun/` to .git/info/exclude once): the CUDA test binary and the GPU benchmarks
# (gpu_bench, gpu_ivf_bench: each only if built), built here, stripped of debug info, plus the
# shared libraries they link that the bare GPU image lacks (Abseil, and anything else outside
# glibc/libstdc++/CUDA). CUDA libraries are not carried: the GPU machine's own libcublas/libcudart
# are found at run time by .devrun/env.sh. The SIFT10K .npy files of ../shared/data (5 MiB; the
# only shared data set the CUDA tests read) are copied to .devrun/data when present, and env.sh
# links them where the tests look for them (the build's ../shared/data path) when that is absent.
#
#   scripts/pack-gpu-run.sh [BUILD_DIR]      (default build-cuda; build the targets first:
#       cmake --build build-cuda -j2 --target rosetta_cuda_tests gpu_bench gpu_ivf_bench \
#             rosettad rosetta_driver server_bench)
#
# Then, with the device tool:  run(command: "source .devrun/env.sh && .devrun/rosetta_cuda_tests",
#                                 carry: [".devrun"])
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
build=${1:-build-cuda}
[[ "$build" = /* ]] || build="$root/$build"
out="$root/.devrun"

[[ -x "$build/tests/rosetta_cuda_tests" ]] || {
  echo "missing $build/tests/rosetta_cuda_tests: build it first" >&2
  exit 1
}
bins=("$build/tests/rosetta_cuda_tests")
# The server, the bench driver and the server bench (issue 6's engine path: --device cuda,
# dynamic batching under concurrent clients) ride along when built.
for b in "$build/bench/gpu_bench" "$build/bench/gpu_ivf_bench" "$build/tools/rosettad" \
         "$build/bench/rosetta_driver" "$build/bench/server_bench"; do
  if [[ -x "$b" ]]; then bins+=("$b"); else echo "note: $b not built; not packed" >&2; fi
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

# Shared data the CUDA tests read (SIFT10K), and where the build expects it.
data_src="$root/../shared/data/sift10k_siftsmall"
if [[ -d "$data_src" ]]; then
  mkdir -p "$out/data/sift10k_siftsmall"
  cp "$data_src"/base.npy "$data_src"/query.npy "$out/data/sift10k_siftsmall/"
fi
shared_dir=$(cd "$root/.." && pwd)/shared/data

# What was built: the commit, and whether the working tree differed from it.
{
  echo "commit: $(git -C "$root" rev-parse HEAD)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $build"
  echo "uncommitted changes in kernels/ tests/cuda/ bench/: $(git -C "$root" status --short -- kernels tests/cuda bench | wc -l)"
} > "$out/BUILD_INFO"

echo "shared_dir=$shared_dir" > "$out/env_paths.sh"
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
source "$here/env_paths.sh"
if [[ -d "$here/data" && ! -e "$shared_dir" ]]; then
  mkdir -p "$(dirname "$shared_dir")" && ln -s "$here/data" "$shared_dir" &&
    echo "linked $shared_dir -> $here/data"
fi
for b in "$here"/rosetta_cuda_tests "$here"/gpu_bench "$here"/gpu_ivf_bench "$here"/rosettad \
         "$here"/rosetta_driver "$here"/server_bench; do
  [[ -x "$b" ]] || continue
  missing=$(ldd "$b" | grep 'not found' || true)
  [[ -z "$missing" ]] || echo "MISSING for $(basename "$b"): $missing"
done
ENV

du -sh "$out"
ls -la "$out" "$out/lib" | head -60
