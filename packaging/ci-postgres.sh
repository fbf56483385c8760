#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and trusts the `postgres` user over
# loopback, as the test suite expects (EMO_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres).
# For CI and throw-away test machines only: it adds a loopback `trust` rule to a cluster it creates.
set -euo pipefail
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing PostgreSQL (server for the test suite)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fresh=1
else
  fresh=0
fi
if [ "$fresh" = 0 ] && pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ -z "$version" ]; then
  echo "ci-postgres: no PostgreSQL cluster in /etc/postgresql" >&2
  exit 1
fi
hba=/etc/postgresql/$version/main/pg_hba.conf
if [ "$fresh" = 1 ] || ! grep -qE '^host\s+all\s+(all|postgres)\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  # Loopback trust for the test user, ahead of the default rules.
  $sudo_cmd sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
fi
if pg_isready -q -h 127.0.0.1 -p 5432; then
  $sudo_cmd pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
else
  $sudo_cmd pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 1
done
echo "ci-postgres: PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
