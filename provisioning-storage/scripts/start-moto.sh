#!/usr/bin/env bash
# Starts moto's S3-compatible server for provisioning-storage's S3 tests and
# prints its endpoint (the only thing written to stdout), so CI can do:
#
#   export PROVISIONING_TEST_S3_ENDPOINT="$(bash provisioning-storage/scripts/start-moto.sh)"
#
# - installs moto's server from PyPI (`pip install 'moto[server]'`) if missing;
# - starts it in the background on 127.0.0.1, on a free port;
# - waits until it answers, then prints http://127.0.0.1:PORT.
#
# The server keeps running after the script exits; its pid is written to
# $MOTO_PID_FILE (default: $TMPDIR/provisioning-moto.pid) and its log to
# $MOTO_LOG (default: $TMPDIR/provisioning-moto.log). Stop it with
# `kill "$(cat "$MOTO_PID_FILE")"`. Override the interpreter with $PYTHON.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
TMP="${TMPDIR:-/tmp}"
MOTO_PID_FILE="${MOTO_PID_FILE:-$TMP/provisioning-moto.pid}"
MOTO_LOG="${MOTO_LOG:-$TMP/provisioning-moto.log}"

log() { echo "start-moto: $*" >&2; }

answers() {
    "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=2).read()
EOF
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "$PYTHON not found; set PYTHON to a Python 3 interpreter"
    exit 1
fi

if ! "$PYTHON" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
    log "installing moto[server] from PyPI"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'moto[server]' >&2
fi

port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
endpoint="http://127.0.0.1:$port"

# setsid + nohup: the server outlives this script and CI's step; its output goes
# to the log, never to our stdout (a `$(...)` caller would wait for it forever).
setsid nohup "$PYTHON" -m moto.server -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 < /dev/null &
pid=$!
echo "$pid" >"$MOTO_PID_FILE"

for _ in $(seq 1 60); do
    if answers "$endpoint"; then
        log "moto is up at $endpoint (pid $pid, log $MOTO_LOG)"
        echo "$endpoint"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        log "moto exited; its log follows"
        cat "$MOTO_LOG" >&2
        exit 1
    fi
    sleep 0.5
done

log "moto did not answer at $endpoint within 30 s; its log follows"
cat "$MOTO_LOG" >&2
kill "$pid" 2>/dev/null || true
exit 1
