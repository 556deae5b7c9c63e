#!/usr/bin/env bash
# Installs what ferrite needs on a fresh Debian machine (as root), skipping what is already there.
# Usage: scripts/setup.sh            build + test dependencies (Debian packages, python jsonschema)
#        scripts/setup.sh --clang    also clang++ and its sanitizer/libFuzzer runtimes (test.sh --sanitize, fuzz.sh)
set -euo pipefail

packages=(meson ninja-build pkg-config g++ git cmake
          libxtensor-dev xtl-dev libxsimd-dev libtbb-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev dataset-fashion-mnist python3
          openmpi-bin libopenmpi-dev libturbojpeg0-dev)
case "${1:-}" in
  "") ;;
  --clang) packages+=(clang libclang-rt-dev) ;;
  *) echo "usage: scripts/setup.sh [--clang]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The JSON-schema test validates benchmark output with python's jsonschema.
py=$(command -v python3)
if ! "$py" -c 'import jsonschema' 2>/dev/null; then
  echo "setup: installing python jsonschema for $py" >&2
  "$py" -m pip install -q jsonschema 2>/dev/null ||
    "$py" -m pip install -q --break-system-packages jsonschema 2>/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-jsonschema >/dev/null
fi
