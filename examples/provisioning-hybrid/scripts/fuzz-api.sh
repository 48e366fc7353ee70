#!/usr/bin/env bash
# Fuzzes `provisioning-hybrid serve` against its own OpenAPI document with
# schemathesis, as CI does:
#
#   bash examples/provisioning-hybrid/scripts/fuzz-api.sh
#
# - installs schemathesis 4 from PyPI if missing;
# - builds the example binary (in $CARGO_TARGET_DIR if set);
# - starts `serve` with a bearer token over a fresh temp data dir, on a free
#   loopback port, and waits for /healthz;
# - runs schemathesis on /api/v1/openapi.json with the token (all its phases:
#   the document's examples, boundary coverage, random fuzzing, and stateful
#   runs that follow the receipts' links: create, then suspend, resume,
#   workflows, delete...), checking that no answer is a 5xx, that every status
#   code, content type, header and body is one the document declares, and
#   that the operations it protects refuse a request without the token;
# - stops the server and exits with schemathesis's status.
#
# Budget: $FUZZ_MAX_EXAMPLES test cases per operation and phase (default 100;
# about half a minute on 2 cores, after the build), seed $FUZZ_SEED (default:
# fixed, so that a failure reproduces). One worker: schemathesis's parallel
# workers race in Python 3.11's `ast` module. The server's log is kept in
# $FUZZ_LOG (default: $TMPDIR/provisioning-fuzz-api.log). Override the
# interpreter with $PYTHON.
set -euo pipefail

cd "$(dirname "$0")/../../.."

PYTHON="${PYTHON:-python3}"
TMP="${TMPDIR:-/tmp}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
SEED="${FUZZ_SEED:-20260101}"
LOG="${FUZZ_LOG:-$TMP/provisioning-fuzz-api.log}"

log() { echo "fuzz-api: $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "$PYTHON not found; set PYTHON to a Python 3 interpreter"
    exit 1
fi

if ! "$PYTHON" -c 'import schemathesis, sys; sys.exit(int(schemathesis.__version__.split(".")[0]) != 4)' \
    >/dev/null 2>&1; then
    log "installing schemathesis 4 from PyPI"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi

log "building provisioning-hybrid"
cargo build --quiet -p provisioning-hybrid
bin="${CARGO_TARGET_DIR:-target}/debug/provisioning-hybrid"

data="$(mktemp -d "$TMP/provisioning-fuzz-api.XXXXXX")"
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
# A fresh token per run: the API is served as it would be off loopback, and
# the fuzzer also checks that the operations the document protects refuse a
# request without it (`ignored_auth`).
token="fuzz-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"

PROVISIONING_HYBRID_TOKEN="$token" RUST_LOG="${RUST_LOG:-info}" \
    "$bin" --data-dir "$data/data" serve --addr "127.0.0.1:$port" \
    >"$LOG" 2>&1 </dev/null &
server=$!

stop() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data"
}
trap stop EXIT

answers() {
    "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
}

for _ in $(seq 1 120); do
    if answers "$base/healthz"; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        log "serve exited; its log follows"
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.5
done
if ! answers "$base/healthz"; then
    log "serve did not answer at $base within 60 s; its log follows"
    cat "$LOG" >&2
    exit 1
fi
log "serve is up at $base (pid $server, log $LOG)"

# From the temp dir: schemathesis keeps its caches in the working directory,
# and they go with it.
status=0
(cd "$data" && "$PYTHON" -m schemathesis.cli run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth \
    --header "Authorization: Bearer $token" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 30 \
    --no-color) \
    || status=$?

if [ "$status" -ne 0 ]; then
    log "schemathesis failed ($status); the server's 5xx and errors, from $LOG:"
    grep -E 'status=5|ERROR' "$LOG" | tail -n 40 >&2 || true
fi
exit "$status"
