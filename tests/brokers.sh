#!/usr/bin/env bash
# The Kafka brokers `make test` runs, each fresh and removed afterwards:
#   - a plaintext single broker        127.0.0.1:19092  (most Kafka tests)
#   - a secured single broker (mTLS, ACLs) 127.0.0.1:19094  (the security suite)
#   - a secured three-broker cluster   127.0.0.1:29092-29094  (replication and failover)
# with one development PKI for both secured ones. `env` prints what pytest needs.
#
# usage: tests/brokers.sh up|down|env
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA="$ROOT/deploy/kafka/kafka.sh"
CLUSTER="$ROOT/deploy/kafka/cluster.sh"
BASE="$ROOT/.kafka/test"
PKI="$BASE/pki"

plain() { LVVX_KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_DATA_DIR="$BASE/plain" "$KAFKA" "$@"; }
secure() {
  KAFKA_SECURITY=tls KAFKA_PKI_DIR="$PKI" LVVX_KAFKA_PORT=19094 KAFKA_CONTROLLER_PORT=19095 \
    KAFKA_DATA_DIR="$BASE/secure" "$KAFKA" "$@"
}
cluster() { KAFKA_PKI_DIR="$PKI" KAFKA_CLUSTER_DIR="$BASE/cluster" "$CLUSTER" "$@"; }

case "${1:-}" in
  up)
    mkdir -p "$BASE"
    [[ -f "$PKI/ca.pem" ]] || "$ROOT/.venv/bin/lvvx" pki init --out "$PKI" >/dev/null
    plain up
    secure up
    cluster up
    ;;
  down)
    cluster clean >/dev/null 2>&1 || true
    secure clean >/dev/null 2>&1 || true
    plain clean >/dev/null 2>&1 || true
    rm -rf "$BASE"
    ;;
  env)
    echo "LVVX_KAFKA_BOOTSTRAP=127.0.0.1:19092"
    echo "LVVX_KAFKA_TLS_BOOTSTRAP=127.0.0.1:19094"
    echo "LVVX_KAFKA_PKI=$PKI"
    echo "LVVX_KAFKA_CLUSTER_BOOTSTRAP=127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
    echo "LVVX_KAFKA_CLUSTER_DIR=$BASE/cluster"
    ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
