#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages EMO needs to build and test, and a Rust toolchain if
# there is none. Safe to re-run: it installs only what is missing.
#   build:  pkg-config, libpq-dev (PostgreSQL client), libasound2-dev + libclang-dev (capture crates)
#   tests:  ffmpeg (video decode), espeak-ng + sox (generated speech fixtures), tmux (TUI end-to-end),
#           pulseaudio + pulseaudio-utils + libasound2-plugins (a virtual microphone for the capture
#           tests: packaging/audio-test-env.sh)
#   tools:  python3-pip (fetches the ONNX Runtime wheel), curl, ca-certificates
set -euo pipefail
pkgs=(build-essential pkg-config libpq-dev libasound2-dev libclang-dev ffmpeg espeak-ng sox tmux procps
      pulseaudio pulseaudio-utils libasound2-plugins
      python3 python3-pip curl ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "Rust is installed in ~/.cargo/bin: add it to PATH (source ~/.cargo/env)"
  else
    echo "installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  fi
fi
