#!/usr/bin/env bash
# Runs EMO's whole test suite: unit tests, the daemon's end-to-end tests against SQLite and
# PostgreSQL (EMO_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; they
# are skipped with a notice when no server answers unless EMO_REQUIRE_POSTGRES=1), the model
# checks with the real ONNX models, and the TUI tests (tmux).
set -euo pipefail
cd "$(dirname "$0")/.."
./packaging/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
./packaging/install-onnxruntime.sh
cargo test --workspace --locked "$@"
