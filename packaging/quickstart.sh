#!/usr/bin/env bash
# Quick start: installs what EMO needs, builds it, and runs the daemon on the embedded SQLite
# database with the shipped models, on http://127.0.0.1:7878 (Ctrl-C stops it).
#   EMO_ADMIN=name EMO_ADMIN_PASSWORD=...  creates that admin on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
./packaging/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
./packaging/install-onnxruntime.sh
cargo build --release --locked -p emod -p emo-tui
bin=target/release/emod
export EMO_MODELS_DIR="${EMO_MODELS_DIR:-$PWD/models}"
"$bin" models check || echo "warning: model check failed (see above); the API still runs"
if [ -n "${EMO_ADMIN:-}" ] && ! "$bin" user list | awk '{print $1}' | grep -qx "$EMO_ADMIN"; then
  printf '%s\n' "${EMO_ADMIN_PASSWORD:?set EMO_ADMIN_PASSWORD}" | "$bin" user add "$EMO_ADMIN" --role admin --password-stdin
fi
cat <<MSG

EMO daemon starting on http://${EMO_LISTEN:-127.0.0.1:7878} (SQLite in ~/.local/share/emo/).
  create an admin:   $bin user add NAME --role admin
  terminal client:   target/release/emo-tui
  API description:   curl http://${EMO_LISTEN:-127.0.0.1:7878}/api/v1/openapi.json
MSG
exec "$bin" serve
