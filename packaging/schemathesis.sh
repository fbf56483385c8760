#!/usr/bin/env bash
# Checks the running daemon against its own OpenAPI document with Schemathesis (issue 18, "keep it
# fixed"): a debug `emod` on a fresh SQLite file in a temporary directory, an admin and an agent
# created with `emod user add`, one bounded Schemathesis run per token, zero failures allowed
# (server errors and every mismatch between the document and the answers). Exits non-zero on any
# failure; the daemon is stopped in every case.
#
#   EMOD_BIN            the emod binary (default: target/debug/emod, built if missing)
#   ST_MAX_EXAMPLES     test cases per operation and phase (default 25)
#   ST_MAX_TIME         seconds per run, one run per token (default 80)
#   ST_SEED             Hypothesis seed (default: random; printed, so a failure can be replayed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

ST_VERSION=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/emo/schemathesis-$ST_VERSION"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "installing schemathesis $ST_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

emod="${EMOD_BIN:-${CARGO_TARGET_DIR:-target}/debug/emod}"
if [ ! -x "$emod" ]; then
  cargo build -p emod --locked
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/emo-schemathesis.XXXXXX")"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Throttles are set out of the way, not off: generated logins and registrations come from one
# address, and meaningless 429s would hide what is being checked. 429 stays documented (the
# hashing queue can still answer it) and the throttles have their own tests (tests/hostile*.rs).
cat >"$work/emod.toml" <<EOF
[auth]
max_failed_logins = 1000000
max_failed_logins_per_address = 1000000
max_registrations_per_address = 0
[analyze]
max_concurrent = 2
EOF
export EMO_CONFIG="$work/emod.toml"
export EMO_SQLITE_PATH="$work/emo.sqlite3"
export EMO_WRITER_SPOOL_DIR="$work/spool"
export EMO_MODELS_DIR="$PWD/models"
export EMO_ONNXRUNTIME_INTRA_THREADS=1
export EMO_LOG=warn
unset RUST_LOG

password="schemathesis-password-1"
for who in "root admin" "agent1 agent"; do
  set -- $who
  printf '%s\n' "$password" | "$emod" user add "$1" --role "$2" --password-stdin >/dev/null
done

# The system picks the port and emod names it in the port file once it serves (as the Rust tests
# do): a port chosen here and released before emod binds it could be taken in between.
"$emod" serve --listen 127.0.0.1:0 --port-file "$work/port" >"$work/emod.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/emod.log" >&2; echo "emod exited at start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/port" ] || { cat "$work/emod.log" >&2; echo "emod wrote no port file in 60 s" >&2; exit 1; }
base="http://$(cat "$work/port")"
curl -fsS "$base/healthz" >/dev/null

token() {
  curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
agent_token="$(token agent1)"

seed="${ST_SEED:-$RANDOM$RANDOM}"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method,allow_header_conformance
status=0
# Schemathesis reuses the user names it reads from GET /users, so PATCH /users/{username} changes
# the very accounts it runs as (a new password or `disabled` revokes their tokens, and every later
# request would only see 401). So each role's PATCH run comes last for that role, the agent goes
# first (it can change only itself), and the admin logs in only after the agent's runs.
patch_users="PATCH /api/v1/users/{username}"
for run in "agent main" "agent patch" "admin main" "admin patch"; do
  set -- $run
  who="$1"
  if [ "$2" = main ]; then
    filter=(--exclude-name "$patch_users")
    max_time="${ST_MAX_TIME:-80}"
  else
    filter=(--include-name "$patch_users")
    max_time="${ST_PATCH_TIME:-20}"
  fi
  [ "$who" = admin ] && [ -z "${admin_token:-}" ] && admin_token="$(token root)"
  tok="${who}_token"
  echo "== schemathesis $ST_VERSION as the $who, $2 (seed $seed)"
  start=$(date +%s)
  # Excluded, with reasons:
  #  - POST /auth/logout revokes the very token the run authenticates with; every later request
  #    would be a 401 (its behaviour is tested in tests/emod/api_auth.rs).
  #  - GET /sessions/{id}/live is an endless event stream; on a running session a request never
  #    completes (it is tested in tests/emod/hostile_ingest.rs and tests/emod/api_sessions.rs).
  # One worker: with two, Hypothesis failed inside itself ("AST constructor recursion depth
  # mismatch" while describing a strategy, a thread-safety fault of the tool, not a finding).
  # Run from the temporary directory: Schemathesis keeps state in ./.schemathesis.
  (cd "$work" && "$venv/bin/st" --no-color run "$base/api/v1/openapi.json" \
    --url "$base" \
    -H "Authorization: Bearer ${!tok}" \
    --checks "$checks" \
    --phases examples,coverage,fuzzing \
    --max-examples "${ST_MAX_EXAMPLES:-25}" \
    --max-time "$max_time" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 20 \
    --exclude-path /api/v1/auth/logout \
    --exclude-path '/api/v1/sessions/{id}/live' \
    "${filter[@]}" \
    --suppress-health-check all \
    --generation-database none \
    --report junit --report-dir "$work/report-$who-$2") || status=$?
  echo "== $who $2 run: $(( $(date +%s) - start )) s, exit $status"
  kill -0 "$pid" 2>/dev/null || { echo "emod died during the run" >&2; status=1; break; }
  # A run whose token stopped working tested nothing but 401s from then on: that is a failure.
  me="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${!tok}" "$base/api/v1/me")"
  if [ "$2" = main ] && [ "$me" != 200 ]; then
    echo "the $who token no longer works after its run (GET /me: $me)" >&2
    status=1
  fi
done

# A clean shutdown exits 0 (capture stopped, pending samples written).
kill -TERM "$pid" 2>/dev/null || true
emod_status=0
wait "$pid" || emod_status=$?
pid=""
if [ "$emod_status" != 0 ]; then
  echo "emod exited with status $emod_status after SIGTERM" >&2
  status=1
fi
if grep -E "panicked|internal error" "$work/emod.log" >&2; then
  echo "emod logged a panic or an internal error during the run" >&2
  status=1
fi
exit "$status"
