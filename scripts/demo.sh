#!/usr/bin/env bash
# Builds Custodian and runs the demo: a real server and a real agent talking
# mutual-TLS gRPC on loopback, with the embedded sled store in ./demo.
# Ends with what `custodianctl device show` prints for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --quiet
bin=target/debug
demo=demo
rm -rf "$demo"
mkdir -p "$demo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "custodian-server init: CA, server TLS certificate, signing key, store"
$bin/custodian-server init --data-dir "$demo/data"

step "custodian-server operator issue: an engineer's identity"
$bin/custodian-server operator issue --data-dir "$demo/data" --name demo.engineer --role engineer --out "$demo/engineer"

step "custodian-server serve (TLS 1.3, client certificates) on 127.0.0.1"
$bin/custodian-server serve --data-dir "$demo/data" --listen 127.0.0.1:0 >"$demo/server.out" 2>"$demo/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$demo/server.out")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "${addr:-}" ] || { echo "the server did not start; see $demo/server.log" >&2; exit 1; }
export CUSTODIAN_SERVER="https://$addr" CUSTODIAN_IDENTITY="$demo/engineer"
echo "server at $CUSTODIAN_SERVER (log: $demo/server.log)"

step "custodianctl token create: a one-time enrolment token"
token=$($bin/custodianctl token create --site "Demo General Hospital" --ttl 1h)
echo "$token"

step "custodian-agent enroll: device key made locally, CSR + token, first report"
$bin/custodian-agent --log-level warn enroll --server "$CUSTODIAN_SERVER" --ca "$demo/data/ca.pem" \
    --token "$token" --state-dir "$demo/agent"

step "custodian-agent report: collect, sign, spool, deliver"
$bin/custodian-agent --log-level warn report --state-dir "$demo/agent"

step "custodianctl device list"
$bin/custodianctl device list

step "custodianctl device show $(cat /proc/sys/kernel/hostname)"
$bin/custodianctl device show "$(cat /proc/sys/kernel/hostname)"
