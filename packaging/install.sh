#!/usr/bin/env bash
# System install (root): emod + emo-tui to /usr/local/bin, models to /usr/share/emo/models,
# ONNX Runtime to /usr/local/lib/emo, config to /etc/emo, a system user `emo`, and the systemd unit.
#   sudo packaging/install.sh        (after `cargo build --release`)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
for b in target/release/emod target/release/emo-tui; do
  [ -x "$b" ] || { echo "install.sh: $b is missing: run cargo build --release first" >&2; exit 1; }
done
./packaging/install-onnxruntime.sh /usr/local/lib/emo
install -m 0755 target/release/emod target/release/emo-tui /usr/local/bin/
install -d /usr/share/emo/models /etc/emo /usr/share/doc/emo
install -m 0644 models/manifest.toml models/*.onnx models/*.md models/NOTICE /usr/share/emo/models/
install -m 0644 README.md /usr/share/doc/emo/
[ -f /etc/emo/emod.toml ] || install -m 0640 packaging/emod.example.toml /etc/emo/emod.toml
id emo >/dev/null 2>&1 || useradd --system --home-dir /var/lib/emo --shell /usr/sbin/nologin emo
chgrp emo /etc/emo/emod.toml
# The unit is the Debian package's; this install puts the binary in /usr/local/bin.
sed 's|/usr/bin/emod|/usr/local/bin/emod|' packaging/emod.service > /etc/systemd/system/emod.service
chmod 0644 /etc/systemd/system/emod.service
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed; start with: systemctl enable --now emod"
else
  echo "installed (no systemd running: start /usr/local/bin/emod --config /etc/emo/emod.toml serve yourself)"
fi
