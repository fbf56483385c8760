#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that emod loads at run time (ort's load-dynamic).
# It comes from the PyPI wheel, fetched with pip but without installing anything into Python.
#   packaging/install-onnxruntime.sh [DEST_DIR]   (default: ~/.local/lib/emo; root: /usr/local/lib/emo)
# Set ORT_VERSION to pick another release (>= 1.31: emod is built against API 31), ORT_PACKAGE=onnxruntime-gpu for CUDA.
set -euo pipefail
version="${ORT_VERSION:-1.31.1}"
package="${ORT_PACKAGE:-onnxruntime}"
if [ "$(id -u)" = 0 ]; then default_dest=/usr/local/lib/emo; else default_dest="$HOME/.local/lib/emo"; fi
dest="${1:-$default_dest}"
if [ -e "$dest/libonnxruntime.so" ] && [ -e "$dest/libonnxruntime.so.$version" ] && [ -e "$dest/LICENSE.onnxruntime" ]; then
  echo "ONNX Runtime $version already installed in $dest"
  exit 0
fi
command -v python3 >/dev/null || { echo "install-onnxruntime: python3 (for pip download) is required" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$package==$version"
wheel=$(ls "$tmp"/*.whl)
python3 - "$wheel" "$tmp/x" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.startswith("onnxruntime/capi/libonnxruntime") or n in ("onnxruntime/LICENSE", "onnxruntime/ThirdPartyNotices.txt"):
        z.extract(n, sys.argv[2])
PY
mkdir -p "$dest"
# Each file is written beside its final name and renamed over it: a daemon already running keeps
# the library it mapped (copying over a mapped library in place crashes that process; seen when a
# re-run added the licence files while `emod eval` was running).
for f in "$tmp"/x/onnxruntime/capi/libonnxruntime*; do
  cp "$f" "$dest/.$(basename "$f").new"
  mv -f "$dest/.$(basename "$f").new" "$dest/$(basename "$f")"
done
# Its licence (MIT) and third-party notices go with it (the Debian package's copyright file
# quotes them).
cp "$tmp"/x/onnxruntime/LICENSE "$dest"/LICENSE.onnxruntime
cp "$tmp"/x/onnxruntime/ThirdPartyNotices.txt "$dest"/ThirdPartyNotices.onnxruntime.txt
lib=$(cd "$dest" && ls libonnxruntime.so.1.* | grep -v providers | sort -V | tail -n 1)
ln -sf "$lib" "$dest/libonnxruntime.so"
[ -e "$dest/libonnxruntime.so.$version" ] || ln -sf "$lib" "$dest/libonnxruntime.so.$version"
echo "ONNX Runtime $version installed: $dest/libonnxruntime.so -> $lib"
