#!/usr/bin/env bash
# Builds the Debian package of EMO into target/debian/emo_VERSION_ARCH.deb:
#   ./packaging/build-deb.sh
# with plain dpkg-deb (no cargo-deb, no debhelper), so every file, mode and maintainer script in
# the package is spelled out here or in packaging/debian/.
#
#   /usr/bin/emod, /usr/bin/emo-tui              release binaries (stripped)
#   /usr/share/emo/models/                       the models of models/manifest.toml, the manifest,
#                                                the model cards, NOTICE and licence texts
#   /usr/lib/emo/libonnxruntime.so*              ONNX Runtime (from the PyPI wheel, as
#                                                packaging/install-onnxruntime.sh fetches it)
#   /lib/systemd/system/emod.service             packaging/emod.service
#   /etc/emo/emod.toml                           conffile: `emod config print-default` with the
#                                                packaged paths filled in
#   /usr/share/man/man8/emod.8.gz, man1/emo-tui.1.gz   from --help (help2man)
#   /usr/share/bash-completion/completions/, zsh/vendor-completions/, fish/vendor_completions.d/
#                                                shell completions for emod and emo-tui
#   /usr/share/doc/emo/                          copyright (incl. ONNX Runtime's MIT licence),
#                                                changelog, README
# gzip, not xz: xz takes minutes here for the 30 MB ONNX Runtime and saves little.
# Dependencies come from dpkg-shlibdeps (libc6, libasound2, libpq5, ...), plus adduser for the
# maintainer scripts; ffmpeg (video files, ffmpeg: sources) is recommended.
#
# EMO_DEB_SKIP_BUILD=1 packages the binaries already in target/release without running cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

need=()
for tool in dpkg-deb dpkg-shlibdeps help2man fakeroot; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  pkgs=(dpkg-dev help2man fakeroot)
  echo "build-deb: installing ${pkgs[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ "${EMO_DEB_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p emod -p emo-tui
fi
target="${CARGO_TARGET_DIR:-target}"
emod_bin="$target/release/emod"
tui_bin="$target/release/emo-tui"
for b in "$emod_bin" "$tui_bin"; do
  [ -x "$b" ] || { echo "build-deb: $b is missing" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
out="$target/debian"
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$out" "$stage"

# ONNX Runtime, fetched once into a cache beside the package.
ort_dir="$out/onnxruntime"
./packaging/install-onnxruntime.sh "$ort_dir" >/dev/null

# --- files ---
install -d -m 0755 "$stage/usr/bin" "$stage/usr/lib/emo" "$stage/usr/share/emo/models/licenses" \
  "$stage/lib/systemd/system" "$stage/etc/emo" "$stage/usr/share/doc/emo" \
  "$stage/usr/share/man/man1" "$stage/usr/share/man/man8" "$stage/usr/share/lintian/overrides"
install -m 0755 "$emod_bin" "$tui_bin" "$stage/usr/bin/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/emod" "$stage/usr/bin/emo-tui"

ort_lib=$(cd "$ort_dir" && ls libonnxruntime.so.1.* | grep -v providers | sort -V | tail -n 1)
install -m 0644 "$ort_dir/$ort_lib" "$ort_dir/libonnxruntime_providers_shared.so" "$stage/usr/lib/emo/"
ln -s "$ort_lib" "$stage/usr/lib/emo/libonnxruntime.so"

# Only the models the manifest names (not experiments lying around in models/).
model_files=$(sed -n 's/^file = "\(.*\)"/\1/p' models/manifest.toml)
for f in $model_files manifest.toml NOTICE README.md expression.md face_detector.md speech.md; do
  install -m 0644 "models/$f" "$stage/usr/share/emo/models/$f"
done
install -m 0644 models/licenses/* "$stage/usr/share/emo/models/licenses/"

install -m 0644 packaging/emod.service "$stage/lib/systemd/system/emod.service"

# The conffile: every default with its comment, and the packaged locations filled in.
"$emod_bin" config print-default | python3 -c '
import sys
text = sys.stdin.read()
section = None
out = []
values = {
    ("database", "sqlite_path"): "\"/var/lib/emo/emo.sqlite3\"",
    ("writer", "spool_dir"): "\"/var/lib/emo/spool\"",
    ("models", "dir"): "\"/usr/share/emo/models\"",
    ("onnxruntime", "library"): "\"/usr/lib/emo/libonnxruntime.so\"",
}
seen = set()
for line in text.splitlines():
    s = line.strip()
    if s.startswith("[") and s.endswith("]"):
        section = s[1:-1]
    elif "=" in s and not s.startswith("#"):
        key = s.split("=", 1)[0].strip()
        if (section, key) in values:
            line = f"{key} = {values[(section, key)]}"
            seen.add((section, key))
    out.append(line)
missing = set(values) - seen
if missing:
    sys.exit(f"build-deb: print-default lacks {sorted(missing)}")
header = """# /etc/emo/emod.toml: configuration of the emod service (Debian package emo).
# Every key is shown with its default and a comment; the paths of this installation are filled
# in: data in /var/lib/emo, models in /usr/share/emo/models, ONNX Runtime in /usr/lib/emo.
# After a change: sudo systemctl restart emod. Check the result: sudo emod --config
# /etc/emo/emod.toml doctor. Several workstations can share one PostgreSQL: set database.url.
"""
print(header + "\n".join(out))
' > "$stage/etc/emo/emod.toml"
chmod 0644 "$stage/etc/emo/emod.toml"

# Man pages from the binaries' own --help (help2man), so they never disagree with the program.
help2man --no-info --section=8 --name="EMO daemon: facial and vocal expression estimates over REST" \
  --version-string="$version" "$emod_bin" | gzip -9n > "$stage/usr/share/man/man8/emod.8.gz"
help2man --no-info --section=1 --name="terminal client for EMO agents and admins" \
  --version-string="$version" "$tui_bin" | gzip -9n > "$stage/usr/share/man/man1/emo-tui.1.gz"

# Shell completions from the binaries themselves (clap_complete), in each shell's standard
# directory for packaged completions.
install -d -m 0755 "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
for prog in emod emo-tui; do
  if [ "$prog" = emod ]; then gen=("$emod_bin" completions); else gen=("$tui_bin" --completions); fi
  "${gen[@]}" bash > "$stage/usr/share/bash-completion/completions/$prog"
  "${gen[@]}" zsh > "$stage/usr/share/zsh/vendor-completions/_$prog"
  "${gen[@]}" fish > "$stage/usr/share/fish/vendor_completions.d/$prog.fish"
done
chmod 0644 "$stage/usr/share/bash-completion/completions/"* \
  "$stage/usr/share/zsh/vendor-completions/"* "$stage/usr/share/fish/vendor_completions.d/"*

# --- documentation ---
doc="$stage/usr/share/doc/emo"
gzip -9n < README.md > "$doc/README.md.gz"
gzip -9n < "$ort_dir/ThirdPartyNotices.onnxruntime.txt" > "$doc/ThirdPartyNotices.onnxruntime.txt.gz"
date_r=$(git log -1 --format=%aD 2>/dev/null || date -R)
{
  echo "emo ($version) unstable; urgency=medium"
  echo
  echo "  * Package built from the EMO repository (git $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
  echo
  echo " -- EMO maintainers <emo@example.invalid>  $date_r"
} | gzip -9n > "$doc/changelog.gz"
{
  cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: emo
Upstream-Contact: EMO maintainers <emo@example.invalid>
Comment: The binaries link statically the Rust crates listed in the repository's Cargo.lock
 (MIT and/or Apache-2.0 licensed crates, and a bundled SQLite, public domain).

Files: *
Copyright: 2026 EMO authors
License: Apache-2.0

Files: usr/share/emo/models/*
Copyright: 2019 Google LLC (BlazeFace face detector), 2026 EMO authors (expression and speech models)
License: Apache-2.0 and CC-BY-NC-SA-4.0
Comment: face_detector.onnx is Apache-2.0. expression.onnx is derived from FER-2013 (research use,
 no formal licence), speech.onnx from RAVDESS (CC BY-NC-SA 4.0: non-commercial use only, with
 attribution, share-alike). Details and attributions: /usr/share/emo/models/NOTICE and the model
 cards in the same directory.

Files: usr/lib/emo/*
Copyright: Microsoft Corporation
License: MIT
Comment: ONNX Runtime, from the onnxruntime wheel on PyPI. Its third-party notices are in
 /usr/share/doc/emo/ThirdPartyNotices.onnxruntime.txt.gz.

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

License: CC-BY-NC-SA-4.0
 Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International,
 https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode

License: MIT
EOF
  # ONNX Runtime's licence text, verbatim (blank lines as " .").
  sed -e 's/^[[:space:]]*$/./' -e 's/^/ /' "$ort_dir/LICENSE.onnxruntime"
} > "$doc/copyright"
chmod 0644 "$doc"/*

# Lintian overrides, each with its reason.
cat > "$stage/usr/share/lintian/overrides/emo" <<'EOF'
# ONNX Runtime is a private library of emod (dlopen()ed from /usr/lib/emo, never linked against),
# shipped as the upstream binary of the PyPI wheel: Debian has no ONNX Runtime >= 1.31 to use
# instead, and the copies of curl and mbedtls are linked into that binary by its upstream build.
emo: embedded-library curl [usr/lib/emo/libonnxruntime.so.1.31.1]
emo: embedded-library mbedtls [usr/lib/emo/libonnxruntime.so.1.31.1]
EOF
chmod 0644 "$stage/usr/share/lintian/overrides/emo"

# --- control ---
install -d -m 0755 "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo /etc/emo/emod.toml > "$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

# dpkg-shlibdeps wants a debian/control beside it; a scratch one names the package.
shl=$(mktemp -d)
trap 'rm -rf "$shl"' EXIT
mkdir -p "$shl/debian"
printf 'Source: emo\n\nPackage: emo\nArchitecture: any\n' > "$shl/debian/control"
abs_stage=$(cd "$stage" && pwd)
shlibs=$(cd "$shl" && dpkg-shlibdeps -O -l"$abs_stage/usr/lib/emo" \
  "$abs_stage/usr/bin/emod" "$abs_stage/usr/bin/emo-tui" "$abs_stage/usr/lib/emo/$ort_lib" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: emo
Version: $version
Architecture: $arch
Maintainer: EMO maintainers <emo@example.invalid>
Installed-Size: $installed_size
Depends: adduser, $shlibs
Recommends: ffmpeg
Suggests: postgresql
Section: misc
Priority: optional
Homepage: https://example.invalid/emo
Description: facial and vocal expression estimates, with consent, over REST
 EMO estimates which expressions a face and a voice show (per window, from a
 camera, a microphone or recorded files) with local ONNX models, stores only
 the per-window estimates of agents who consented (never images or audio) in
 SQLite or a shared PostgreSQL, and serves them over a REST API.
 .
 This package contains the daemon emod (a hardened systemd service, user emo,
 data in /var/lib/emo), the terminal client emo-tui, the models and the ONNX
 Runtime library they run on.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb="$out/emo_${version}_${arch}.deb"
rm -f "$out"/*.deb
dpkg-deb --root-owner-group -Zgzip -z9 --build "$stage" "$deb" >/dev/null
echo "$deb"
