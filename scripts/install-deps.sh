#!/usr/bin/env bash
# Installs what Rosetta needs to build and test on Debian 12, as root (or with sudo).
# Only missing packages are installed; a machine that has them all is left untouched.
#
# Boost: Debian 12's libboost-dev is 1.74 (Asio 1.18, no as_tuple); we use libboost1.81-dev, which
# conflicts with the 1.74 dev packages, so it is named explicitly here.
set -euo pipefail

packages=(
  build-essential cmake git pkg-config ccache
  librocksdb-dev libabsl-dev libboost1.81-dev
  libflatbuffers-dev flatbuffers-compiler
  nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
