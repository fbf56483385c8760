#!/usr/bin/env bash
# Proves the Debian package on a clean machine (as root; CI runs it from .ci/run):
#   1. builds it (packaging/build-deb.sh) and runs lintian on it (warnings and errors fail);
#   2. checks the unit's sandbox: `systemd-analyze security --offline=true` exposure <= 3.0;
#   3. unpacks a minimal Debian 12 root (mmdebstrap, cached as a tarball in
#      /var/cache/emo-deb-test, refreshed monthly), installs the .deb there with apt (its
#      dependencies come from Debian's archive), and inside the root, as user emo (there is no
#      systemd in a chroot, so the daemon is started by hand with setpriv):
#      `emod models check` passes, `emod serve` answers /readyz, an admin made with
#      `emod user add` logs in over HTTP, `emod backup` and `emod doctor` work, `emo-tui --help`
#      works, the shell completions are where bash, zsh and fish look; then `dpkg --purge` leaves nothing behind but /var/lib/emo (kept unless asked
#      for, see packaging/debian/postrm), and a second install + purge with /etc/emo/purge-data
#      removes that too.
# EMO_DEB_SKIP_BUILD=1 reuses target/release (see build-deb.sh). Prints its run time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { echo "== test-deb [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it builds a chroot)"

missing=()
for p in mmdebstrap lintian curl; do command -v "$p" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "building the package"
deb=$(./packaging/build-deb.sh | tail -n 1)
[ -f "$deb" ] || fail "build-deb.sh did not produce a package"
ls -l "$deb"

step "lintian"
lintian --display-info --fail-on error,warning "$deb" || fail "lintian reports warnings or errors"

step "systemd-analyze security"
score=$(systemd-analyze security --offline=true packaging/emod.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for emod.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
[ -n "$score" ] || fail "systemd-analyze gave no exposure level"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "exposure $score > 3.0"

step "clean Debian 12 root"
mirror="${EMO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${EMO_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
cache=/var/cache/emo-deb-test
tarball="$cache/bookworm-$(date +%Y%m).tar"
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  rm -f "$cache"/bookworm-*.tar
  mmdebstrap --quiet --format=tar --variant=apt --include=ca-certificates bookworm "$cache/partial.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main"
  mv "$cache/partial.tar" "$tarball"
fi
root=$(mktemp -d /var/tmp/emo-deb-root.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  for m in "$root/proc" "$root/dev"; do
    mountpoint -q "$m" && umount -l "$m"
  done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
in_root() { chroot "$root" "$@"; }
# Commands as the service user, the way the unit runs them (no login shell, its groups).
as_emo() { chroot "$root" setpriv --reuid=emo --regid=emo --init-groups --reset-env -- "$@"; }
conf=(--config /etc/emo/emod.toml)

# (stat runs inside the root: user and group names are the root's, not this machine's.)
# What the root holds apart from state that changes by itself (apt lists, logs, caches).
snapshot() {
  in_root find / -xdev \( -path /proc -o -path /dev -o -path /tmp -o -path /var/tmp \
    -o -path /var/cache -o -path /var/log -o -path /var/lib/apt -o -path /var/lib/dpkg \
    -o -path /run \) -prune -o -print | sort
}

step "apt install ./$(basename "$deb") (dependencies from $mirror)"
cp "$deb" "$root/tmp/"
in_root apt-get update -qq
# Recommends (ffmpeg) left out: the checks below do not decode media files.
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "/tmp/$(basename "$deb")" >/dev/null
in_root dpkg -s emo | sed -n 's/^\(Version\|Depends\|Recommends\):/  &/p'
getent_emo=$(in_root getent passwd emo) || fail "postinst did not create the emo user"
echo "  user: $getent_emo; groups: $(in_root id -nG emo)"
in_root id -nG emo | grep -qw video || fail "emo is not in group video"
in_root id -nG emo | grep -qw audio || fail "emo is not in group audio"
[ "$(in_root stat -c %a /var/lib/emo)" = 700 ] || fail "/var/lib/emo is not 0700"
[ "$(in_root stat -c '%a %U %G' /etc/emo/emod.toml)" = "640 root emo" ] || fail "/etc/emo/emod.toml is not 0640 root:emo"
[ -L "$root/etc/systemd/system/multi-user.target.wants/emod.service" ] || fail "emod.service is not enabled"
if in_root ldd /usr/bin/emod /usr/bin/emo-tui /usr/lib/emo/libonnxruntime.so | grep 'not found'; then
  fail "a shared library is missing"
fi

step "emod models check (as emo)"
as_emo /usr/bin/emod "${conf[@]}" models check

step "emod serve (as emo), /readyz"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Not through the as_emo function: chroot execs setpriv execs emod, so $! is emod itself.
chroot "$root" setpriv --reuid=emo --regid=emo --init-groups --reset-env -- \
  /usr/bin/emod "${conf[@]}" serve --listen "127.0.0.1:$port" >"$root/tmp/emod.log" 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 1 300); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$root/tmp/emod.log"; fail "emod serve exited"; }
  sleep 0.2
done
[ "$ready" = 1 ] || { cat "$root/tmp/emod.log"; fail "/readyz did not answer"; }
curl -fsS "$base/readyz"; echo
[ "$(in_root stat -c '%U %a' /var/lib/emo/emo.sqlite3)" = "emo 600" ] || fail "the database is not emo's 0600 file"

step "emod user add + login over HTTP"
printf 'correct horse battery\n' | as_emo /usr/bin/emod "${conf[@]}" user add boss --role admin --password-stdin
login=$(curl -fsS -H 'content-type: application/json' \
  -d '{"username":"boss","password":"correct horse battery"}' "$base/api/v1/auth/login")
token=$(printf '%s' "$login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[ -n "$token" ] || fail "no token in the login answer: $login"
curl -fsS -H "authorization: Bearer $token" "$base/api/v1/users" >/dev/null || fail "the admin's token is refused"
echo "  admin boss logged in and listed users"

step "emod doctor and emod backup while the daemon runs"
as_emo /usr/bin/emod "${conf[@]}" doctor || fail "emod doctor reports a problem"
as_emo /usr/bin/emod "${conf[@]}" backup /var/lib/emo/backup.sqlite3
[ "$(in_root stat -c %a /var/lib/emo/backup.sqlite3)" = 600 ] || fail "the backup is not 0600"
if as_emo /usr/bin/emod "${conf[@]}" backup /var/lib/emo/backup.sqlite3 2>/dev/null; then
  fail "emod backup overwrote an existing file"
fi

step "emo-tui --help"
in_root /usr/bin/emo-tui --help | head -n 3

step "shell completions in the standard directories"
for prog in emod emo-tui; do
  for f in /usr/share/bash-completion/completions/$prog /usr/share/zsh/vendor-completions/_$prog \
           /usr/share/fish/vendor_completions.d/$prog.fish; do
    in_root test -s "$f" || fail "$f is missing or empty"
  done
  in_root bash -c "source /usr/share/bash-completion/completions/$prog && complete -p $prog" >/dev/null \
    || fail "bash does not load the completion of $prog"
done

kill -TERM "$server_pid"
wait "$server_pid" || fail "emod serve did not exit cleanly on SIGTERM"
server_pid=""

step "dpkg --purge emo (data kept unless asked)"
before=$(snapshot)
in_root dpkg --purge emo
after=$(snapshot)
added=$(comm -13 <(echo "$before") <(echo "$after"))
[ -z "$added" ] || fail "purge added files: $added"
left=$(echo "$after" | grep -E '^/(etc/emo|usr/share/emo|usr/lib/emo|usr/share/doc/emo)(/|$)|emod|emo-tui' || true)
[ -z "$left" ] || fail "purge left files behind: $left"
[ -d "$root/var/lib/emo" ] || fail "purge removed /var/lib/emo without being asked"
! in_root getent passwd emo >/dev/null || fail "purge left the emo user"
! in_root getent group emo >/dev/null || fail "purge left the emo group"
echo "  left behind, as documented: $(echo "$after" | grep -c '^/var/lib/emo') paths under /var/lib/emo"

step "install again, then purge with /etc/emo/purge-data"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "/tmp/$(basename "$deb")" >/dev/null
[ "$(in_root stat -c %U /var/lib/emo)" = emo ] || fail "the kept data directory is not the new emo user's"
touch "$root/etc/emo/purge-data"
in_root dpkg --purge emo
[ ! -e "$root/var/lib/emo" ] || fail "purge with /etc/emo/purge-data kept /var/lib/emo"
[ ! -e "$root/etc/emo" ] || fail "purge left /etc/emo"

step "passed in $(( $(date +%s) - t0 )) s"
