#!/usr/bin/env bash
# Fetch, start and stop a real Apache Kafka 4.x broker (KRaft mode, no ZooKeeper, no Docker).
#
# Kafka runs from its Maven Central artifacts: deploy/kafka/pom.xml lists them, `fetch` copies the
# jars into <repo>/.cache/kafka/<version>/libs, and `up` runs
#   java -cp '<libs>/*' kafka.Kafka <data dir>/server.properties
# as one combined broker+controller bound to 127.0.0.1. KAFKA_SECURITY=tls: TLS 1.3 with client
# certificates on every listener and ACLs (server-tls.properties.in). See deploy/kafka/README.md.
#
# usage: deploy/kafka/kafka.sh fetch|up|down|status|clean|logs|env|pki|client-config|tool CLASS ARGS...
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: '&' in ${x//a/b} must stay literal

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO_ROOT/deploy/kafka"

# ----------------------------------------------------------------------------- knobs
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-$REPO_ROOT/.cache/kafka/$KAFKA_VERSION}"
KAFKA_LIBS="$KAFKA_CACHE_DIR/libs"
KAFKA_M2_REPO="${KAFKA_M2_REPO:-$REPO_ROOT/.cache/m2}" # Maven local repo used by `fetch` (self-contained)

# plaintext: no encryption, no authentication, no ACLs (development default).
# tls: every listener (clients, inter-broker, KRaft controller) TLS 1.3 with client certificates
# from KAFKA_PKI_DIR, principals from the certificate subject, StandardAuthorizer with deny-by-default
# (server-tls.properties.in is appended to the config); other default ports and data dir.
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
case "$KAFKA_SECURITY" in
  plaintext | PLAINTEXT) KAFKA_SECURITY=plaintext ;;
  tls | TLS | ssl | SSL) KAFKA_SECURITY=tls ;;
  *) printf 'kafka.sh: error: KAFKA_SECURITY must be plaintext or tls, not %s\n' "$KAFKA_SECURITY" >&2; exit 2 ;;
esac
if [[ "$KAFKA_SECURITY" == tls ]]; then
  _default_port=9094 _default_controller_port=9095 _listener=SSL _default_data_dir="$REPO_ROOT/.kafka/single-tls"
else
  _default_port=9092 _default_controller_port=9093 _listener=PLAINTEXT _default_data_dir="$REPO_ROOT/.kafka/single"
fi

KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${LVVX_KAFKA_PORT:-$_default_port}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$_default_controller_port}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_PROCESS_ROLES="${KAFKA_PROCESS_ROLES:-broker,controller}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_LISTENERS="${KAFKA_LISTENERS:-$_listener://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_ADVERTISED_LISTENERS="${KAFKA_ADVERTISED_LISTENERS:-$_listener://$KAFKA_HOST:$KAFKA_PORT}"
KAFKA_PROTOCOL_MAP="${KAFKA_PROTOCOL_MAP:-$_listener:$_listener,CONTROLLER:$_listener}"
KAFKA_INTER_BROKER_LISTENER="${KAFKA_INTER_BROKER_LISTENER:-$_listener}"

# TLS material (KAFKA_SECURITY=tls), as written by `lvvx pki init --out DIR`
KAFKA_PKI_DIR="${KAFKA_PKI_DIR:-$REPO_ROOT/.kafka/pki}"
KAFKA_TLS_TRUSTSTORE="${KAFKA_TLS_TRUSTSTORE:-$KAFKA_PKI_DIR/ca.pem}"                  # CA certificate(s), PEM
KAFKA_TLS_KEYSTORE="${KAFKA_TLS_KEYSTORE:-$KAFKA_PKI_DIR/broker.keystore.pem}"         # broker key + chain, PEM
KAFKA_TLS_CLIENT_KEYSTORE="${KAFKA_TLS_CLIENT_KEYSTORE:-$KAFKA_PKI_DIR/admin.keystore.pem}" # the tools' (probe) identity
KAFKA_SUPER_USERS="${KAFKA_SUPER_USERS:-User:broker;User:admin}"
KAFKA_PKI_INIT="${KAFKA_PKI_INIT:-1}" # 1: make a development PKI in KAFKA_PKI_DIR with `lvvx pki init` when it has none
LVVX="${LVVX:-$REPO_ROOT/.venv/bin/lvvx}"
KAFKA_WAIT="${KAFKA_WAIT:-1}" # 0: `up` returns once the JVM is launched, without waiting until it serves (cluster.sh)
KAFKA_REPLICATION_FACTOR="${KAFKA_REPLICATION_FACTOR:-1}"
KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-1}"
KAFKA_INTERNAL_PARTITIONS="${KAFKA_INTERNAL_PARTITIONS:-10}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"            # empty: random, generated once per data dir
KAFKA_EXTRA_CONFIG="${KAFKA_EXTRA_CONFIG:-}"        # optional file appended to server.properties

KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$_default_data_dir}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_CDS="${KAFKA_CDS:-0}" # 1: reuse a class-data-sharing archive of the broker's classes (faster JVM start)
KAFKA_CDS_DUMP="${KAFKA_CDS_DUMP:-1}" # with KAFKA_CDS=1 and no archive yet: 1 = this broker writes it at exit
JAVA="${JAVA:-java}"

# ----------------------------------------------------------------------------- layout
CONFIG_FILE="$KAFKA_DATA_DIR/server.properties"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
LOG_DIR="$KAFKA_DATA_DIR/logs"             # log4j output: server.log, controller.log, state-change.log
STDOUT_LOG="$LOG_DIR/stdout.log"           # the JVM's own stdout/stderr
STORAGE_DIR="$KAFKA_DATA_DIR/data"         # log.dirs (topic data and the KRaft metadata log)
CLUSTER_ID_FILE="$KAFKA_DATA_DIR/cluster.id"
CLIENT_CONFIG_FILE="$KAFKA_DATA_DIR/admin-client.properties" # KAFKA_SECURITY=tls: the admin's client config, for the tools
CDS_PENDING_FILE="$KAFKA_DATA_DIR/cds.pending" # KAFKA_CDS=1: "<temp archive> <archive>" the running broker writes at exit
FETCHED_MARKER="$KAFKA_CACHE_DIR/.fetched"
# JVM flags for the short-lived tool processes: start fast, log little
TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
  "-Dlog4j2.configurationFile=$HERE/tools-log4j2.properties")

say() { printf 'kafka.sh: %s\n' "$*"; }
err() { printf 'kafka.sh: error: %s\n' "$*" >&2; }

usage() {
  cat <<EOF
usage: $0 COMMAND

commands:
  fetch    download the Kafka $KAFKA_VERSION jars (Maven Central) into $KAFKA_LIBS, once
  up       fetch if needed, format storage once, start the broker, wait until it serves
  down     stop the broker started by 'up' (SIGTERM, SIGKILL after ${KAFKA_STOP_TIMEOUT}s)
  status   exit 0 if a broker serves on $KAFKA_HOST:$KAFKA_PORT, non-zero otherwise
  clean    down, then delete the data dir $KAFKA_DATA_DIR
  logs     print the last lines of the broker log and of the JVM's stdout/stderr
  env      print the effective settings
  pki      KAFKA_SECURITY=tls: make a development PKI in KAFKA_PKI_DIR (lvvx pki init) unless it has one
  client-config
           print the properties a Kafka tool needs to reach this broker as admin (TLS: admin keystore)
  tool CLASS [ARGS...]
           run a Kafka tool class (e.g. org.apache.kafka.tools.TopicCommand) on the broker's classpath

knobs (environment): KAFKA_SECURITY (plaintext|tls) KAFKA_PKI_DIR KAFKA_VERSION LVVX_KAFKA_PORT
  KAFKA_CONTROLLER_PORT KAFKA_NODE_ID KAFKA_DATA_DIR KAFKA_HEAP_OPTS KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT
  KAFKA_WAIT ... (see deploy/kafka/README.md)
EOF
}

# ----------------------------------------------------------------------------- fetch
is_fetched() { [[ -f "$FETCHED_MARKER" && -d "$KAFKA_LIBS" ]]; }

cmd_fetch() {
  if is_fetched; then
    say "Kafka $KAFKA_VERSION jars already in $KAFKA_LIBS"
    return 0
  fi
  command -v mvn >/dev/null || { err "mvn (Maven) not found; it is needed to fetch Kafka"; return 1; }
  command -v "$JAVA" >/dev/null || { err "java not found (Kafka $KAFKA_VERSION needs Java 17+)"; return 1; }
  local tmp="$KAFKA_CACHE_DIR/libs.tmp.$$" t0=$SECONDS
  mkdir -p "$KAFKA_CACHE_DIR" "$KAFKA_M2_REPO"
  rm -rf "$tmp"
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (Maven repo $KAFKA_M2_REPO) ..."
  local mvn_log="$KAFKA_CACHE_DIR/fetch.log"
  if ! mvn -B -Dstyle.color=never -f "$HERE/pom.xml" \
      "-Dmaven.repo.local=$KAFKA_M2_REPO" \
      "-Dkafka.version=$KAFKA_VERSION" \
      dependency:copy-dependencies \
      "-DoutputDirectory=$tmp" -DincludeScope=runtime >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$mvn_log" >&2
    err "fetching Kafka $KAFKA_VERSION failed (Maven output above; all of it in $mvn_log)"
    return 1
  fi
  if [[ ! -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    rm -rf "$tmp"
    err "fetch produced no kafka_2.13-$KAFKA_VERSION.jar"
    return 1
  fi
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  {
    echo "kafka.version=$KAFKA_VERSION"
    echo "fetched.at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "jars=$(find "$KAFKA_LIBS" -name '*.jar' | wc -l)"
  } >"$FETCHED_MARKER"
  say "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1)) in $((SECONDS - t0)) s"
}

# ----------------------------------------------------------------------------- process helpers
# pid of the broker started by `up` from this data dir, if it still runs
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: it must be kafka.Kafka running our config
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $CONFIG_FILE" || return 1
  echo "$pid"
}

port_open() { # host port -> 0 if something accepts TCP connections
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

run_tool() { # main class + args, on the broker's classpath
  "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$KAFKA_LIBS/*" "$@"
}

# the client properties of the tools (probe, TopicCommand, ...): TLS with the admin's certificate when
# KAFKA_SECURITY=tls, nothing for plaintext
client_config() {
  [[ "$KAFKA_SECURITY" == tls ]] || return 0
  printf '%s\n' \
    "# KAFKA_SECURITY=tls: a Kafka client (tool) authenticated as the admin certificate of $KAFKA_PKI_DIR" \
    'security.protocol=SSL' \
    'ssl.keystore.type=PEM' \
    "ssl.keystore.location=$KAFKA_TLS_CLIENT_KEYSTORE" \
    'ssl.truststore.type=PEM' \
    "ssl.truststore.location=$KAFKA_TLS_TRUSTSTORE" \
    'ssl.protocol=TLSv1.3' \
    'ssl.enabled.protocols=TLSv1.3' \
    'ssl.endpoint.identification.algorithm=https'
}

probe_timeouts() {
  printf '%s\n' 'request.timeout.ms=5000' 'default.api.timeout.ms=8000' \
    'socket.connection.setup.timeout.ms=2000' 'socket.connection.setup.timeout.max.ms=2000'
}

# 0 if a Kafka broker answers an ApiVersions + Metadata round trip on the client port
# (BrokerApiVersionsCommand bootstraps via a Metadata request, then asks every broker for its API versions).
# With an argument (a node id): that node must be in the metadata, unfenced, and answer ApiVersions itself.
serving() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
  is_fetched || return 1
  local cfg out rc=0
  if [[ "$KAFKA_SECURITY" == tls ]]; then
    cfg="$(mktemp "${TMPDIR:-/tmp}/kafka-probe.XXXXXX")"
    { client_config; probe_timeouts; } >"$cfg"
  else
    cfg="$KAFKA_CACHE_DIR/probe-client.properties"
    [[ -f "$cfg" ]] || probe_timeouts >"$cfg"
  fi
  out="$(timeout 30 "$JAVA" "${TOOL_JVM_OPTS[@]}" -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" --command-config "$cfg" 2>/dev/null)" || rc=$?
  [[ "$KAFKA_SECURITY" == tls ]] && rm -f "$cfg"
  ((rc == 0)) || return 1
  if [[ -n "${1:-}" ]]; then
    grep -q "(id: $1 rack: [^)]*isFenced: false) -> (" <<<"$out"
  else
    grep -q "(id: " <<<"$out"
  fi
}

SERVER_LOG_OFFSET=0 # size of server.log before this start: log_tail shows only what this start wrote

log_tail() {
  local f="$LOG_DIR/server.log" size
  if [[ -s "$f" ]]; then
    size="$(stat -c %s "$f")"
    echo "----- last 50 lines of $f -----"
    if ((SERVER_LOG_OFFSET > 0 && size > SERVER_LOG_OFFSET)); then
      tail -c "+$((SERVER_LOG_OFFSET + 1))" "$f" | tail -n 50
    else
      tail -n 50 "$f"
    fi
  fi
  f="$STDOUT_LOG"
  if [[ -s "$f" ]]; then
    echo "----- last 20 lines of $f (JVM stdout/stderr) -----"
    tail -n 20 "$f"
  fi
}

# ----------------------------------------------------------------------------- config + storage
render_config() {
  local tpl="$HERE/server.properties.in" content
  content="$(<"$tpl")"
  if [[ "$KAFKA_SECURITY" == tls ]]; then
    tpl="$tpl + $HERE/server-tls.properties.in"
    content+=$'\n\n'"$(<"$HERE/server-tls.properties.in")"
  fi
  local -A vars=(
    [PROCESS_ROLES]="$KAFKA_PROCESS_ROLES"
    [NODE_ID]="$KAFKA_NODE_ID"
    [QUORUM_VOTERS]="$KAFKA_QUORUM_VOTERS"
    [LISTENERS]="$KAFKA_LISTENERS"
    [ADVERTISED_LISTENERS]="$KAFKA_ADVERTISED_LISTENERS"
    [PROTOCOL_MAP]="$KAFKA_PROTOCOL_MAP"
    [INTER_BROKER_LISTENER]="$KAFKA_INTER_BROKER_LISTENER"
    [LOG_DIRS]="$STORAGE_DIR"
    [REPLICATION_FACTOR]="$KAFKA_REPLICATION_FACTOR"
    [MIN_ISR]="$KAFKA_MIN_ISR"
    [INTERNAL_PARTITIONS]="$KAFKA_INTERNAL_PARTITIONS"
    [TLS_KEYSTORE]="$KAFKA_TLS_KEYSTORE"
    [TLS_TRUSTSTORE]="$KAFKA_TLS_TRUSTSTORE"
    [SUPER_USERS]="$KAFKA_SUPER_USERS"
  )
  local k
  for k in "${!vars[@]}"; do
    content="${content//@$k@/${vars[$k]}}"
  done
  if grep -q '@[A-Z_]*@' <<<"$content"; then
    err "unfilled placeholder in $tpl: $(grep -o '@[A-Z_]*@' <<<"$content" | sort -u | tr '\n' ' ')"
    return 1
  fi
  {
    printf '%s\n' "$content"
    if [[ -n "$KAFKA_EXTRA_CONFIG" ]]; then
      printf '\n# ---- appended from %s\n' "$KAFKA_EXTRA_CONFIG"
      cat "$KAFKA_EXTRA_CONFIG"
    fi
  } >"$CONFIG_FILE.tmp"
  mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
  if [[ "$KAFKA_SECURITY" == tls ]]; then
    client_config >"$CLIENT_CONFIG_FILE"
  else
    rm -f "$CLIENT_CONFIG_FILE"
  fi
}

# KAFKA_SECURITY=tls: the broker's keystore, the CA and the tools' keystore must exist. If KAFKA_PKI_DIR
# holds no CA at all, make a development PKI there (lvvx pki init), once, unless KAFKA_PKI_INIT=0.
ensure_pki() {
  [[ "$KAFKA_SECURITY" == tls ]] || return 0
  local f missing=()
  for f in "$KAFKA_TLS_TRUSTSTORE" "$KAFKA_TLS_KEYSTORE" "$KAFKA_TLS_CLIENT_KEYSTORE"; do
    [[ -s "$f" ]] || missing+=("$f")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$KAFKA_PKI_INIT" != 1 || -e "$KAFKA_PKI_DIR/ca.pem" || ! -x "$LVVX" ]]; then
    err "KAFKA_SECURITY=tls needs ${missing[*]}"
    if [[ -e "$KAFKA_PKI_DIR/ca.pem" ]]; then
      err "$KAFKA_PKI_DIR has a CA but not these files; point KAFKA_PKI_DIR (or KAFKA_TLS_*) at a complete PKI"
    else
      err "make a development PKI with: $LVVX pki init --out $KAFKA_PKI_DIR (or set KAFKA_PKI_DIR)"
    fi
    return 1
  fi
  mkdir -p "$(dirname "$KAFKA_PKI_DIR")"
  (
    # two parallel `up`s (cluster nodes) must not both make a CA
    if command -v flock >/dev/null; then exec 8>"${KAFKA_PKI_DIR%/}.lock"; flock 8; fi
    if [[ ! -e "$KAFKA_PKI_DIR/ca.pem" ]]; then
      say "no PKI in $KAFKA_PKI_DIR: making a development PKI ($LVVX pki init)"
      "$LVVX" pki init --out "$KAFKA_PKI_DIR" >/dev/null
    fi
  )
  for f in "$KAFKA_TLS_TRUSTSTORE" "$KAFKA_TLS_KEYSTORE" "$KAFKA_TLS_CLIENT_KEYSTORE"; do
    [[ -s "$f" ]] || { err "missing $f after lvvx pki init"; return 1; }
  done
}

random_cluster_id() { # 16 random bytes, base64url without padding (Kafka's Uuid format); never starts with '-'
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && "$id" != "AAAAAAAAAAAAAAAAAAAAAA" ]] && break
  done
  echo "$id"
}

format_storage() {
  if [[ -f "$STORAGE_DIR/meta.properties" ]]; then
    return 0
  fi
  local cid="$KAFKA_CLUSTER_ID"
  if [[ -z "$cid" ]]; then
    if [[ -s "$CLUSTER_ID_FILE" ]]; then cid="$(<"$CLUSTER_ID_FILE")"; else cid="$(random_cluster_id)"; fi
  fi
  echo "$cid" >"$CLUSTER_ID_FILE"
  say "formatting KRaft storage in $STORAGE_DIR (cluster id $cid, node id $KAFKA_NODE_ID)"
  # static quorum (controller.quorum.voters) => plain `format`, no --standalone
  if ! run_tool kafka.tools.StorageTool format --config "$CONFIG_FILE" --cluster-id "$cid" --ignore-formatted \
      >"$LOG_DIR/format.log" 2>&1; then
    err "formatting storage failed:"
    cat "$LOG_DIR/format.log" >&2
    return 1
  fi
}

# ----------------------------------------------------------------------------- up / down
# serialise up/down/clean on one data dir (two concurrent `up`s must not start two brokers)
LOCKED=0
lock_data_dir() {
  ((LOCKED == 0)) || return 0
  command -v flock >/dev/null || return 0
  mkdir -p "$KAFKA_DATA_DIR"
  exec 9>"$KAFKA_DATA_DIR/.kafka.sh.lock"
  flock 9
  LOCKED=1
}

# 0 once this start's part of server.log says the broker is up. Only a hint for when to probe: each probe
# is a JVM (2-3 s of CPU), which would slow down a start on a small machine if run every half second.
log_says_started() {
  local f="$LOG_DIR/server.log"
  [[ -s "$f" ]] || return 1
  tail -c "+$((SERVER_LOG_OFFSET + 1))" "$f" 2>/dev/null | grep -q "Kafka Server started"
}

wait_until_serving() { # pid t0
  local pid="$1" t0="$2" deadline=$((SECONDS + KAFKA_START_TIMEOUT)) last_probe=$SECONDS
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      err "the broker (pid $pid) exited during start-up"
      log_tail >&2
      rm -f "$PID_FILE"
      return 1
    fi
    # probe when the log says started, else every 5 s anyway (the log is a hint, the probe decides)
    if port_open "$KAFKA_HOST" "$KAFKA_PORT" && { log_says_started || ((SECONDS - last_probe >= 5)); }; then
      last_probe=$SECONDS
      if serving "$KAFKA_NODE_ID"; then
        local ms=$(( $(date +%s%3N) - t0 ))
        say "Kafka $KAFKA_VERSION serves on $KAFKA_HOST:$KAFKA_PORT ($KAFKA_SECURITY, pid $pid), up in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
        return 0
      fi
    fi
    sleep 0.25
  done
  err "the broker (pid $pid) did not serve on $KAFKA_HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (KAFKA_START_TIMEOUT)"
  log_tail >&2
  err "stopping it; the logs stay in $LOG_DIR"
  cmd_down >&2 || true
  return 1
}

cmd_up() {
  local pid t0
  lock_data_dir
  t0="$(date +%s%3N)"
  if pid="$(broker_pid)"; then
    if [[ "$KAFKA_WAIT" == 0 ]]; then
      say "already running (pid $pid, data dir $KAFKA_DATA_DIR)"
      return 0
    fi
    if serving "$KAFKA_NODE_ID"; then
      say "already running: Kafka serves on $KAFKA_HOST:$KAFKA_PORT (pid $pid, data dir $KAFKA_DATA_DIR)"
      return 0
    fi
    say "broker pid $pid is starting; waiting for it"
    wait_until_serving "$pid" "$t0"
    return
  fi
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    cmd_fetch >/dev/null
    if serving; then
      say "already running: a Kafka broker (not started from $KAFKA_DATA_DIR) serves on $KAFKA_HOST:$KAFKA_PORT"
      return 0
    fi
    err "port $KAFKA_HOST:$KAFKA_PORT is in use by something that is not a Kafka broker (reachable with KAFKA_SECURITY=$KAFKA_SECURITY); set LVVX_KAFKA_PORT"
    return 1
  fi
  if port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
    err "controller port $KAFKA_HOST:$KAFKA_CONTROLLER_PORT is in use; set KAFKA_CONTROLLER_PORT"
    return 1
  fi

  cmd_fetch
  ensure_pki
  t0="$(date +%s%3N)" # the start time excludes the (one-off) fetch and PKI
  mkdir -p "$KAFKA_DATA_DIR" "$LOG_DIR" "$STORAGE_DIR"
  render_config
  format_storage

  # optional class-data sharing (JDK 13+ dynamic archive): the first start with KAFKA_CDS=1 writes the
  # archive when the broker exits (on `down`), later starts map it and skip most class loading
  local cds_opts=()
  if [[ "$KAFKA_CDS" == 1 ]]; then
    local jsa
    jsa="$KAFKA_CACHE_DIR/cds/broker-$("$JAVA" -XshowSettings:properties -version 2>&1 |
      sed -n 's/^ *java.runtime.version = //p' | tr -c 'A-Za-z0-9.\n-' '_').jsa"
    mkdir -p "$(dirname "$jsa")"
    rm -f "$CDS_PENDING_FILE"
    if [[ -s "$jsa" && "$jsa" -nt "$FETCHED_MARKER" ]]; then
      cds_opts=("-XX:SharedArchiveFile=$jsa")
    elif [[ "$KAFKA_CDS_DUMP" == 1 ]]; then # none yet, or older than the jars
      # written to a temp file, moved into place by `down` once the JVM is gone: a broker starting
      # meanwhile (another cluster node) never maps a half-written archive
      local tmp
      tmp="$jsa.tmp-$(printf '%s' "$KAFKA_DATA_DIR" | cksum | cut -d' ' -f1)"
      rm -f "$tmp"
      echo "$tmp $jsa" >"$CDS_PENDING_FILE"
      cds_opts=("-XX:ArchiveClassesAtExit=$tmp")
      say "KAFKA_CDS=1: the class archive $jsa is written when this broker stops"
    fi
  fi

  say "starting Kafka $KAFKA_VERSION (node $KAFKA_NODE_ID, $KAFKA_SECURITY, $KAFKA_HOST:$KAFKA_PORT, controller :$KAFKA_CONTROLLER_PORT, data $KAFKA_DATA_DIR)"
  [[ -f "$STDOUT_LOG" ]] && mv -f "$STDOUT_LOG" "$STDOUT_LOG.1"
  echo "===== $(date -u +%Y-%m-%dT%H:%M:%SZ) kafka.sh up: $KAFKA_VERSION node $KAFKA_NODE_ID" >"$STDOUT_LOG"
  SERVER_LOG_OFFSET="$(stat -c %s "$LOG_DIR/server.log" 2>/dev/null || echo 0)"
  # setsid: own session, so Ctrl-C in the calling terminal does not reach the broker.
  # KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS are word lists, hence unquoted.
  # shellcheck disable=SC2086
  setsid nohup "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS ${cds_opts[@]+"${cds_opts[@]}"} \
    "-Dkafka.logs.dir=$LOG_DIR" \
    "-Dlog4j2.configurationFile=$HERE/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$CONFIG_FILE" \
    >>"$STDOUT_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if [[ "$KAFKA_WAIT" == 0 ]]; then
    say "launched (pid $pid); KAFKA_WAIT=0: not waiting until it serves"
    return 0
  fi
  wait_until_serving "$pid" "$t0"
}

cmd_down() {
  local pid
  if [[ -d "$KAFKA_DATA_DIR" ]]; then lock_data_dir; fi
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    say "no broker started from $KAFKA_DATA_DIR is running"
    return 0
  fi
  say "stopping Kafka (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  cds_install
  say "stopped"
}

# KAFKA_CDS=1: move the class archive the stopped broker wrote at exit into place
cds_install() {
  [[ -f "$CDS_PENDING_FILE" ]] || return 0
  local tmp jsa
  read -r tmp jsa <"$CDS_PENDING_FILE" || true
  rm -f "$CDS_PENDING_FILE"
  if [[ -n "$tmp" && -s "$tmp" && -n "$jsa" ]]; then
    mv -f "$tmp" "$jsa"
    say "KAFKA_CDS=1: class archive written to $jsa"
  else
    rm -f "${tmp:-/nonexistent}"
  fi
}

cmd_status() {
  local pid=""
  pid="$(broker_pid)" || pid=""
  if serving ${pid:+"$KAFKA_NODE_ID"}; then
    say "serving on $KAFKA_HOST:$KAFKA_PORT${pid:+ (pid $pid)}"
    return 0
  fi
  if [[ -n "$pid" ]]; then
    say "broker pid $pid runs but does not serve on $KAFKA_HOST:$KAFKA_PORT (yet)"
  else
    say "not running on $KAFKA_HOST:$KAFKA_PORT"
  fi
  return 1
}

cmd_clean() {
  cmd_down
  if [[ -d "$KAFKA_DATA_DIR" ]]; then
    rm -rf "$KAFKA_DATA_DIR"
    say "deleted $KAFKA_DATA_DIR"
  fi
}

cmd_env() {
  local v
  for v in KAFKA_VERSION KAFKA_CACHE_DIR KAFKA_LIBS KAFKA_M2_REPO KAFKA_SECURITY KAFKA_HOST KAFKA_PORT \
      KAFKA_CONTROLLER_PORT KAFKA_NODE_ID KAFKA_PROCESS_ROLES KAFKA_QUORUM_VOTERS KAFKA_LISTENERS \
      KAFKA_ADVERTISED_LISTENERS KAFKA_PROTOCOL_MAP KAFKA_INTER_BROKER_LISTENER KAFKA_REPLICATION_FACTOR \
      KAFKA_MIN_ISR KAFKA_CLUSTER_ID KAFKA_DATA_DIR KAFKA_HEAP_OPTS KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT \
      KAFKA_WAIT CONFIG_FILE PID_FILE LOG_DIR; do
    printf '%s=%s\n' "$v" "${!v}"
  done
  if [[ "$KAFKA_SECURITY" == tls ]]; then
    for v in KAFKA_PKI_DIR KAFKA_TLS_TRUSTSTORE KAFKA_TLS_KEYSTORE KAFKA_TLS_CLIENT_KEYSTORE KAFKA_SUPER_USERS \
        CLIENT_CONFIG_FILE; do
      printf '%s=%s\n' "$v" "${!v}"
    done
  fi
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    fetch) cmd_fetch ;;
    up | start) cmd_up ;;
    down | stop) cmd_down ;;
    status) cmd_status ;;
    clean) cmd_clean ;;
    logs) log_tail ;;
    env) cmd_env ;;
    pki) KAFKA_SECURITY=tls; ensure_pki && say "PKI in $KAFKA_PKI_DIR" ;;
    client-config) client_config ;;
    tool)
      shift
      [[ $# -ge 1 ]] || { err "usage: $0 tool CLASS [ARGS...]"; return 2; }
      is_fetched || { err "Kafka $KAFKA_VERSION is not fetched (run: $0 fetch)"; return 1; }
      run_tool "$@"
      ;;
    -h | --help | help) usage ;;
    *) usage >&2; return 2 ;;
  esac
}

main "$@"
