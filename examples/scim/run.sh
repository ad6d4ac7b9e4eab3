#!/usr/bin/env bash
# Syncs the quickstart's Active Directory export into a SCIM 2.0 service through the Entra
# Connect default rules (idflow.toml, mapping.toml).
#
#   SCIM_URL=https://scim.example.com/v2 SCIM_TOKEN=... ./run.sh   # a service of yours
#   ./run.sh                                                        # a local scim2-server
#   ./run.sh stop                                                   # stop that local server
#
# Without SCIM_URL, a local scim2-server (PyPI) is started on a free loopback port with a random
# token and left running for the next run.sh (its URL, token and process id are in
# .scim-server.env; `./run.sh stop` stops it). It keeps its resources in memory only: the run.sh
# that starts a new one starts over with a new state (idflow.db). A second run.sh against the
# same server changes nothing.
#
# idflow is $IDFLOW, else `idflow` on the PATH, else built from this repository with cargo.
# scim2-server is `scim2-server` on the PATH, else ~/.cache/idflow/scim2-venv/bin/scim2-server
# (python3 -m venv ~/.cache/idflow/scim2-venv && ~/.cache/idflow/scim2-venv/bin/pip install scim2-server).
set -euo pipefail
cd "$(dirname "$0")"
STATE_FILE=.scim-server.env

stop_local() {
  if [ -f "$STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "./$STATE_FILE"
    kill "$SCIM_SERVER_PID" 2>/dev/null || true
    rm -f "$STATE_FILE"
    echo "stopped the local scim2-server (process $SCIM_SERVER_PID)"
  fi
}

if [ "${1:-}" = "stop" ]; then
  stop_local
  exit 0
fi

if [ -z "${SCIM_URL:-}" ]; then
  if [ -f "$STATE_FILE" ]; then
    # shellcheck disable=SC1090
    . "./$STATE_FILE"
    if ! kill -0 "$SCIM_SERVER_PID" 2>/dev/null; then
      echo "the local scim2-server of the last run is gone: starting a new one (and a new state)"
      rm -f "$STATE_FILE" idflow.db idflow.db-wal idflow.db-shm
    fi
  fi
  if [ ! -f "$STATE_FILE" ]; then
    SERVER=$(command -v scim2-server || true)
    [ -z "$SERVER" ] && [ -x "$HOME/.cache/idflow/scim2-venv/bin/scim2-server" ] && SERVER="$HOME/.cache/idflow/scim2-venv/bin/scim2-server"
    if [ -z "$SERVER" ]; then
      echo "SCIM_URL is not set and scim2-server is not installed:" >&2
      echo "  python3 -m venv ~/.cache/idflow/scim2-venv && ~/.cache/idflow/scim2-venv/bin/pip install scim2-server" >&2
      exit 2
    fi
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    nohup "$SERVER" --hostname 127.0.0.1 --port "$PORT" --bearer-token "$TOKEN" >scim-server.log 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
      if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
      sleep 0.1
    done
    rm -f idflow.db idflow.db-wal idflow.db-shm
    umask 077
    printf 'SCIM_SERVER_PID=%s\nSCIM_URL=%s\nSCIM_TOKEN=%s\n' "$PID" "http://127.0.0.1:$PORT/v2" "$TOKEN" >"$STATE_FILE"
    echo "started a local scim2-server at http://127.0.0.1:$PORT/v2 (process $PID; ./run.sh stop stops it)"
  fi
  # shellcheck disable=SC1090
  . "./$STATE_FILE"
fi
export SCIM_URL SCIM_TOKEN

if [ -n "${IDFLOW:-}" ]; then
  RUN=("$IDFLOW")
elif command -v idflow >/dev/null 2>&1; then
  RUN=(idflow)
else
  RUN=(cargo run --release --quiet --manifest-path ../../Cargo.toml --)
fi
"${RUN[@]}" run --config idflow.toml
