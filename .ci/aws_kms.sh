#!/usr/bin/env bash
# The AWS KMS backend's tests (cargo feature `aws-kms`) against moto's KMS-compatible server
# on a free loopback port. Installs moto into its own virtualenv (target/moto-venv, reused),
# starts the server, runs tests/aws_kms.rs and the CLI's crates/sealdb-cli/tests/aws_kms_cli.rs,
# and stops the server by its PID whatever happens.
# Exits with the tests' status.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/moto-venv
PYTHON=${PYTHON:-python3}

echo "== aws-kms: moto server in $VENV"
if [ ! -x "$VENV/bin/moto_server" ]; then
  mkdir -p target
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
LOG=target/moto-server.log

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 143' INT TERM

"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!

ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/', timeout=1)" "$ENDPOINT" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "moto_server exited; its log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.2
done

echo "== aws-kms: tests against $ENDPOINT"
status=0
env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_KMS \
  SEALDB_TEST_KMS_ENDPOINT="$ENDPOINT" \
  AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_EC2_METADATA_DISABLED=true \
  bash -c 'cargo test -p sealdb --features aws-kms --test aws_kms &&
    cargo test -p sealdb-cli --features aws-kms --test aws_kms_cli' || status=$?
exit "$status"
