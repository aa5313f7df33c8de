#!/usr/bin/env bash
# A three-broker Apache Kafka cluster (KRaft, no ZooKeeper, no Docker) on one machine, for failover tests.
#
# Three combined broker+controller nodes (node ids 1..3), each one deploy/kafka/kafka.sh instance with its
# own ports and data dir under <repo>/.kafka/cluster/node-N, a shared cluster id and a static controller
# quorum. Replication factor 3 for every topic (internal ones included), min.insync.replicas=2, no unclean
# leader election. TLS 1.3 with client certificates and ACLs by default (KAFKA_SECURITY=plaintext to turn
# that off). See deploy/kafka/README.md.
#
# usage: deploy/kafka/cluster.sh up|down|status|clean|kill N|stop N|start N|pause N|resume N|leader TOPIC PARTITION|...
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO_ROOT/deploy/kafka"
KAFKA_SH="$HERE/kafka.sh"

# ----------------------------------------------------------------------------- knobs
KAFKA_SECURITY="${KAFKA_SECURITY:-tls}"
case "$KAFKA_SECURITY" in
  plaintext | PLAINTEXT) KAFKA_SECURITY=plaintext ;;
  tls | TLS | ssl | SSL) KAFKA_SECURITY=tls ;;
  *) printf 'cluster.sh: error: KAFKA_SECURITY must be tls or plaintext, not %s\n' "$KAFKA_SECURITY" >&2; exit 2 ;;
esac
KAFKA_PKI_DIR="${KAFKA_PKI_DIR:-$REPO_ROOT/.kafka/pki}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$REPO_ROOT/.kafka/cluster}"
read -r -a CLIENT_PORTS <<<"${KAFKA_CLUSTER_PORTS:-29092 29093 29094}"
read -r -a CONTROLLER_PORTS <<<"${KAFKA_CLUSTER_CONTROLLER_PORTS:-29192 29193 29194}"
RF="${KAFKA_REPLICATION_FACTOR:-3}"
MIN_ISR="${KAFKA_MIN_ISR:-2}"
# three JVMs share the machine (2 cores in development): a smaller heap than the single broker's
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}" # seconds `up` waits for all nodes, `start N` for one
# C1 only (-XX:TieredStopAtLevel=1): three JVMs starting on 2 cores spend half their start-up CPU in the C2
# compiler; a test cluster needs CPU headroom more than peak throughput. Otherwise kafka.sh's flags.
JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -XX:TieredStopAtLevel=1}"
# class-data sharing (kafka.sh KAFKA_CDS): node 1 writes the archive when it stops, all nodes map it later
CDS="${KAFKA_CDS:-1}"
QUORUMLESS_GRACE="${KAFKA_QUORUMLESS_GRACE:-3}" # see stop_nodes

NODES=${#CLIENT_PORTS[@]}
if ((NODES != ${#CONTROLLER_PORTS[@]} || NODES < 1)); then
  printf 'cluster.sh: error: KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS need the same number of ports\n' >&2
  exit 2
fi
VOTERS=""
BOOTSTRAP=""
for ((i = 0; i < NODES; i++)); do
  VOTERS+="${VOTERS:+,}$((i + 1))@$KAFKA_HOST:${CONTROLLER_PORTS[i]}"
  BOOTSTRAP+="${BOOTSTRAP:+,}$KAFKA_HOST:${CLIENT_PORTS[i]}"
done
CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id"
CLIENT_CONFIG_FILE="$CLUSTER_DIR/admin-client.properties" # for the Kafka tools (--command-config)
PROBE_CONFIG_FILE="$CLUSTER_DIR/probe-client.properties"

# listener settings are derived per node by kafka.sh; values meant for a single broker must not leak in
unset KAFKA_LISTENERS KAFKA_ADVERTISED_LISTENERS KAFKA_PROTOCOL_MAP KAFKA_INTER_BROKER_LISTENER \
  KAFKA_QUORUM_VOTERS KAFKA_DATA_DIR KAFKA_NODE_ID LVVX_KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_PROCESS_ROLES

say() { printf 'cluster.sh: %s\n' "$*"; }
err() { printf 'cluster.sh: error: %s\n' "$*" >&2; }

usage() {
  cat <<EOF
usage: $0 COMMAND

commands:
  up                 start every node that is not running (in parallel), wait until all $NODES serve
  down               stop all nodes (SIGTERM, in parallel; paused nodes are resumed first)
  status             every node's process state, which nodes serve, the KRaft quorum leader;
                     exit 0 only if all $NODES nodes serve
  clean              down, then delete $CLUSTER_DIR (the PKI stays)
  kill N             SIGKILL node N (a crash)
  stop N             stop node N gracefully (SIGTERM, wait)
  start N            start node N again and wait until it serves (needs a quorum majority running)
  pause N            SIGSTOP node N (a hung process: connections stay open, nothing answers)
  resume N           SIGCONT node N
  leader TOPIC P     print the node id that leads partition P of TOPIC (-1: no leader)
  describe [TOPIC]   kafka-topics --describe (all topics without TOPIC)
  bootstrap          print the bootstrap servers ($BOOTSTRAP)
  client-config      print the path of the admin client properties (--command-config of the Kafka tools)
  logs N             last lines of node N's logs
  env                the effective settings

security: KAFKA_SECURITY=$KAFKA_SECURITY (tls|plaintext), PKI $KAFKA_PKI_DIR
knobs (environment): KAFKA_SECURITY KAFKA_PKI_DIR KAFKA_CLUSTER_DIR KAFKA_CLUSTER_PORTS
  KAFKA_CLUSTER_CONTROLLER_PORTS KAFKA_HOST KAFKA_CLUSTER_ID KAFKA_REPLICATION_FACTOR KAFKA_MIN_ISR
  KAFKA_HEAP_OPTS KAFKA_JVM_OPTS KAFKA_CDS KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT KAFKA_QUORUMLESS_GRACE
  KAFKA_EXTRA_CONFIG (see deploy/kafka/README.md)
EOF
}

# ----------------------------------------------------------------------------- helpers
node_dir() { echo "$CLUSTER_DIR/node-$1"; }

check_node() { # N -> error unless 1..NODES
  [[ "${1:-}" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= NODES)) && return 0
  err "node must be 1..$NODES, not '${1:-}'"
  exit 2
}

cluster_id() {
  if [[ -n "${KAFKA_CLUSTER_ID:-}" ]]; then
    echo "$KAFKA_CLUSTER_ID"
    return
  fi
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    mkdir -p "$CLUSTER_DIR"
    local id
    while :; do # 16 random bytes, base64url without padding (Kafka's Uuid); never starts with '-'
      id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
      [[ "$id" != -* && "$id" != "AAAAAAAAAAAAAAAAAAAAAA" ]] && break
    done
    echo "$id" >"$CLUSTER_ID_FILE"
  fi
  cat "$CLUSTER_ID_FILE"
}

# run kafka.sh for node N: knode N COMMAND [ARGS...] (extra VAR=value pairs in KNODE_EXTRA)
KNODE_EXTRA=()
knode() {
  local n="$1"
  shift
  env KAFKA_SECURITY="$KAFKA_SECURITY" KAFKA_PKI_DIR="$KAFKA_PKI_DIR" KAFKA_HOST="$KAFKA_HOST" \
    KAFKA_NODE_ID="$n" LVVX_KAFKA_PORT="${CLIENT_PORTS[n - 1]}" KAFKA_CONTROLLER_PORT="${CONTROLLER_PORTS[n - 1]}" \
    KAFKA_DATA_DIR="$(node_dir "$n")" KAFKA_QUORUM_VOTERS="$VOTERS" KAFKA_CLUSTER_ID="$(cluster_id)" \
    KAFKA_REPLICATION_FACTOR="$RF" KAFKA_MIN_ISR="$MIN_ISR" KAFKA_HEAP_OPTS="$HEAP_OPTS" \
    KAFKA_START_TIMEOUT="$START_TIMEOUT" KAFKA_JVM_OPTS="$JVM_OPTS" KAFKA_CDS="$CDS" \
    KAFKA_CDS_DUMP="$([[ "$n" == 1 ]] && echo 1 || echo 0)" ${KNODE_EXTRA[@]+"${KNODE_EXTRA[@]}"} \
    "$KAFKA_SH" "$@" 7>&- # fd 7 is this script's lock: the brokers must not inherit it
}

# kafka.sh tool CLASS ARGS... (the broker's classpath, light JVM flags)
ktool() { env KAFKA_SECURITY="$KAFKA_SECURITY" KAFKA_PKI_DIR="$KAFKA_PKI_DIR" "$KAFKA_SH" tool "$@" 7>&-; }

node_pid() { # N -> pid of node N's broker if it runs (started by kafka.sh from its data dir)
  local dir pid
  dir="$(node_dir "$1")"
  [[ -f "$dir/kafka.pid" ]] || return 1
  pid="$(tr -dc '0-9' <"$dir/kafka.pid")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

is_paused() { # pid -> 0 if stopped by a signal (state T)
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" == T ]]
}

write_client_configs() {
  mkdir -p "$CLUSTER_DIR"
  env KAFKA_SECURITY="$KAFKA_SECURITY" KAFKA_PKI_DIR="$KAFKA_PKI_DIR" "$KAFKA_SH" client-config >"$CLIENT_CONFIG_FILE.tmp" 7>&-
  mv "$CLIENT_CONFIG_FILE.tmp" "$CLIENT_CONFIG_FILE"
  {
    cat "$CLIENT_CONFIG_FILE"
    printf '%s\n' 'request.timeout.ms=5000' 'default.api.timeout.ms=8000' \
      'socket.connection.setup.timeout.ms=2000' 'socket.connection.setup.timeout.max.ms=2000'
  } >"$PROBE_CONFIG_FILE"
}

# node ids that are in the cluster metadata, unfenced, and answer ApiVersions (one BrokerApiVersionsCommand)
serving_nodes() {
  [[ -f "$PROBE_CONFIG_FILE" ]] || write_client_configs
  local out
  out="$(timeout 40 env KAFKA_SECURITY="$KAFKA_SECURITY" KAFKA_PKI_DIR="$KAFKA_PKI_DIR" "$KAFKA_SH" tool \
    org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$PROBE_CONFIG_FILE" 2>/dev/null 7>&-)" || true
  sed -n 's/.*(id: \([0-9]*\) rack: [^)]*isFenced: false) -> (.*/\1/p' <<<"$out" | sort -un | tr '\n' ' '
}

LOCKED=0
lock_cluster() { # serialise up/down/clean/start/stop
  ((LOCKED == 0)) || return 0
  command -v flock >/dev/null || return 0
  mkdir -p "$CLUSTER_DIR"
  exec 7>"$CLUSTER_DIR/.cluster.sh.lock"
  flock 7
  LOCKED=1
}

elapsed() { # t0 (ms) -> "12.345"
  local ms=$(($(date +%s%3N) - $1))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

prepare() { # fetch the jars, make the PKI if needed, write the client configs
  KNODE_EXTRA=()
  "$KAFKA_SH" fetch >/dev/null 7>&-
  if [[ "$KAFKA_SECURITY" == tls ]]; then
    local out
    out="$(env KAFKA_PKI_DIR="$KAFKA_PKI_DIR" "$KAFKA_SH" pki 7>&-)" # makes one if missing; errors to stderr
    grep -v '^kafka.sh: PKI in ' <<<"$out" || true
  fi
  cluster_id >/dev/null
  write_client_configs
}

# ----------------------------------------------------------------------------- commands
cmd_up() {
  lock_cluster
  prepare
  local n pid t0 running=() launch=() serving
  for ((n = 1; n <= NODES; n++)); do
    if pid="$(node_pid "$n")"; then
      if is_paused "$pid"; then
        say "node $n (pid $pid) is paused: resuming it"
        kill -CONT "$pid"
      fi
      running+=("$n")
    else
      launch+=("$n")
    fi
  done
  if ((${#launch[@]} == 0)); then
    serving="$(serving_nodes)"
    if [[ "$serving" == "$(seq -s ' ' 1 "$NODES") " ]]; then
      say "already running: all $NODES nodes serve ($KAFKA_SECURITY, bootstrap $BOOTSTRAP)"
      return 0
    fi
  fi
  t0="$(date +%s%3N)"
  for ((n = 1; n <= NODES; n++)); do # where this start's part of each server.log begins (running: all of it)
    LOG_OFFSET[n]=0
  done
  for n in ${launch[@]+"${launch[@]}"}; do
    LOG_OFFSET[n]="$(stat -c %s "$(node_dir "$n")/logs/server.log" 2>/dev/null || echo 0)"
  done
  say "starting node(s) ${launch[*]:-none} ($KAFKA_SECURITY, bootstrap $BOOTSTRAP, cluster id $(cluster_id), data $CLUSTER_DIR)"
  # launch in parallel: no node serves before a majority of the controller quorum runs
  local -A launcher=()
  for n in ${launch[@]+"${launch[@]}"}; do
    mkdir -p "$(node_dir "$n")"
    KNODE_EXTRA=(KAFKA_WAIT=0)
    knode "$n" up >"$CLUSTER_DIR/node-$n.up.log" 2>&1 &
    launcher[$n]=$!
  done
  KNODE_EXTRA=()
  local failed=0
  for n in ${launch[@]+"${launch[@]}"}; do
    if ! wait "${launcher[$n]}"; then
      err "node $n did not start:"
      sed 's/^/  /' "$CLUSTER_DIR/node-$n.up.log" >&2
      failed=1
    fi
  done
  if ((failed)); then
    err "(the cluster's ports are set with KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS); stopping the cluster"
    cmd_down >&2 || true
    return 1
  fi
  wait_all_serving "$t0"
}

LOG_OFFSET=()
started_in_log() { # N -> 0 if node N's server.log says "Kafka Server started" since LOG_OFFSET[N]
  local f
  f="$(node_dir "$1")/logs/server.log"
  [[ -s "$f" ]] && tail -c "+$((${LOG_OFFSET[$1]:-0} + 1))" "$f" 2>/dev/null | grep -q "Kafka Server started"
}

wait_all_serving() { # t0
  local t0="$1" deadline=$((SECONDS + START_TIMEOUT)) n serving="" want all_started last_probe=$SECONDS
  want="$(seq -s ' ' 1 "$NODES") "
  while ((SECONDS < deadline)); do
    all_started=1
    for ((n = 1; n <= NODES; n++)); do
      started_in_log "$n" || all_started=0
      if ! node_pid "$n" >/dev/null; then
        err "node $n exited during start-up"
        KNODE_EXTRA=()
        knode "$n" logs >&2 || true
        err "stopping the cluster"
        cmd_down >&2 || true
        return 1
      fi
    done
    # each probe is a JVM: run it when every node's log says started, else every 5 s (the log is a hint)
    if ((all_started || SECONDS - last_probe >= 5)); then
      last_probe=$SECONDS
      serving="$(serving_nodes)"
      if [[ "$serving" == "$want" ]]; then
        say "all $NODES nodes serve ($KAFKA_SECURITY, bootstrap $BOOTSTRAP), up in $(elapsed "$t0") s"
        return 0
      fi
    fi
    sleep 0.25
  done
  err "not all nodes serve after ${START_TIMEOUT}s (serving: ${serving:-none}); stopping the cluster"
  for ((n = 1; n <= NODES; n++)); do knode "$n" logs >&2 || true; done
  cmd_down >&2 || true
  return 1
}

# Stop nodes (SIGTERM through kafka.sh down, in parallel). A broker's graceful shutdown starts with a
# controlled shutdown that the active controller must commit to the metadata log, so it needs a controller
# quorum majority; when the whole cluster stops, the last node(s) would wait for one that is gone (kafka.sh
# would SIGKILL them after KAFKA_STOP_TIMEOUT, 30 s). So: once fewer than a majority of the nodes run and a
# node has waited QUORUMLESS_GRACE seconds in its controlled shutdown, it gets SIGKILL. Its data is safe
# (written to the page cache); its next start runs log recovery.
stop_nodes() { # N...
  local n pid majority=$((NODES / 2 + 1)) since=-1 alive total_alive
  local -A stopper=() pid_of=() offset=()
  for n in "$@"; do
    pid="$(node_pid "$n")" || continue
    pid_of[$n]=$pid
    offset[$n]="$(stat -c %s "$(node_dir "$n")/logs/server.log" 2>/dev/null || echo 0)"
    is_paused "$pid" && kill -CONT "$pid" # a stopped process would not see SIGTERM
    knode "$n" down >"$CLUSTER_DIR/node-$n.down.log" 2>&1 &
    stopper[$n]=$!
  done
  ((${#stopper[@]} > 0)) || return 0
  while :; do
    alive=()
    for n in "${!pid_of[@]}"; do kill -0 "${pid_of[$n]}" 2>/dev/null && alive+=("$n"); done
    ((${#alive[@]} > 0)) || break
    total_alive=0 # all running nodes, including those not being stopped
    for ((n = 1; n <= NODES; n++)); do node_pid "$n" >/dev/null && total_alive=$((total_alive + 1)); done
    if ((total_alive < majority)); then
      ((since >= 0)) || since=$SECONDS
      if ((SECONDS - since >= QUORUMLESS_GRACE)); then
        for n in "${alive[@]}"; do
          if tail -c "+$((${offset[$n]} + 1))" "$(node_dir "$n")/logs/server.log" 2>/dev/null |
              awk '/Beginning controlled shutdown/ { b = 1 } /asked us to exit controlled shutdown/ { e = 1 }
                   END { exit !(b && !e) }'; then
            say "node $n waits in its controlled shutdown for a controller quorum that is gone: SIGKILL"
            kill -KILL "${pid_of[$n]}" 2>/dev/null || true
          fi
        done
        since=$((SECONDS + 60)) # once
      fi
    fi
    sleep 0.2
  done
  for n in "${!stopper[@]}"; do
    wait "${stopper[$n]}" || { err "stopping node $n:"; cat "$CLUSTER_DIR/node-$n.down.log" >&2; }
    grep -v -e '^kafka.sh: stopping Kafka' -e '^kafka.sh: stopped$' "$CLUSTER_DIR/node-$n.down.log" |
      sed "s/^kafka.sh: /cluster.sh: node $n: /" || true
  done
}

cmd_down() {
  [[ -d "$CLUSTER_DIR" ]] || { say "no cluster in $CLUSTER_DIR"; return 0; }
  lock_cluster
  local n t0 running=()
  t0="$(date +%s%3N)"
  for ((n = 1; n <= NODES; n++)); do node_pid "$n" >/dev/null && running+=("$n"); done
  if ((${#running[@]} == 0)); then
    say "no node is running"
    return 0
  fi
  stop_nodes "${running[@]}"
  say "stopped node(s) ${running[*]} in $(elapsed "$t0") s"
}

cmd_status() {
  local n pid serving rc=0 state
  serving=" $(serving_nodes)"
  for ((n = 1; n <= NODES; n++)); do
    if pid="$(node_pid "$n")"; then
      if is_paused "$pid"; then state="pid $pid, PAUSED (SIGSTOP)"; else state="pid $pid"; fi
    else
      state="not running"
    fi
    if [[ "$serving" == *" $n "* ]]; then
      say "node $n ($KAFKA_HOST:${CLIENT_PORTS[n - 1]}, controller :${CONTROLLER_PORTS[n - 1]}): $state, serving"
    else
      say "node $n ($KAFKA_HOST:${CLIENT_PORTS[n - 1]}, controller :${CONTROLLER_PORTS[n - 1]}): $state, NOT serving"
      rc=1
    fi
  done
  if [[ "$serving" != " " ]]; then
    local q
    q="$(timeout 40 env KAFKA_SECURITY="$KAFKA_SECURITY" KAFKA_PKI_DIR="$KAFKA_PKI_DIR" "$KAFKA_SH" tool \
      org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$BOOTSTRAP" \
      --command-config "$PROBE_CONFIG_FILE" describe --status 2>/dev/null 7>&-)" || true
    if [[ -n "$q" ]]; then
      say "quorum: leader $(sed -n 's/^LeaderId: *//p' <<<"$q"), epoch $(sed -n 's/^LeaderEpoch: *//p' <<<"$q"), high watermark $(sed -n 's/^HighWatermark: *//p' <<<"$q"), voters $(sed -n 's/^CurrentVoters: *//p' <<<"$q" | grep -o '"id": *[0-9]*' | grep -o '[0-9]*$' | tr '\n' ' ')"
    fi
  fi
  return $rc
}

cmd_clean() {
  cmd_down
  if [[ -d "$CLUSTER_DIR" ]]; then
    rm -rf "$CLUSTER_DIR"
    say "deleted $CLUSTER_DIR"
  fi
}

signal_node() { # N SIGNAL verb
  local n="$1" sig="$2" verb="$3" pid
  check_node "$n"
  if ! pid="$(node_pid "$n")"; then
    err "node $n is not running"
    return 1
  fi
  kill "-$sig" "$pid"
  if [[ "$sig" == KILL ]]; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  say "node $n (pid $pid) $verb"
}

cmd_start() {
  local n="$1" pid
  check_node "$n"
  lock_cluster
  prepare
  if pid="$(node_pid "$n")" && is_paused "$pid"; then
    say "node $n (pid $pid) is paused: resuming it"
    kill -CONT "$pid"
  fi
  knode "$n" up
}

cmd_stop() {
  check_node "$1"
  lock_cluster
  if ! node_pid "$1" >/dev/null; then
    say "node $1 is not running"
    return 0
  fi
  local t0
  t0="$(date +%s%3N)"
  stop_nodes "$1"
  say "node $1 stopped in $(elapsed "$t0") s"
}

cmd_leader() { # TOPIC PARTITION
  local topic="${1:-}" part="${2:-}" out leader
  [[ -n "$topic" && "$part" =~ ^[0-9]+$ ]] || { err "usage: $0 leader TOPIC PARTITION"; return 2; }
  [[ -f "$PROBE_CONFIG_FILE" ]] || write_client_configs
  out="$(ktool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$PROBE_CONFIG_FILE" --describe --topic "$topic" 2>&1)" || {
    err "describing $topic failed: $(tail -n 3 <<<"$out")"
    return 1
  }
  leader="$(awk -v p="$part" '
    { for (i = 1; i <= NF; i++) { if ($i == "Partition:") part = $(i + 1); if ($i == "Leader:") lead = $(i + 1) } }
    part == p && lead != "" { print lead; exit }' <<<"$out")"
  if [[ -z "$leader" ]]; then
    err "no partition $part in topic $topic"
    return 1
  fi
  [[ "$leader" == none ]] && leader=-1
  echo "$leader"
  [[ "$leader" != -1 ]]
}

cmd_describe() {
  [[ -f "$PROBE_CONFIG_FILE" ]] || write_client_configs
  ktool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$PROBE_CONFIG_FILE" --describe ${1:+--topic "$1"}
}

cmd_env() {
  printf '%s=%s\n' KAFKA_SECURITY "$KAFKA_SECURITY" KAFKA_PKI_DIR "$KAFKA_PKI_DIR" KAFKA_CLUSTER_DIR "$CLUSTER_DIR" \
    KAFKA_HOST "$KAFKA_HOST" KAFKA_CLUSTER_PORTS "${CLIENT_PORTS[*]}" \
    KAFKA_CLUSTER_CONTROLLER_PORTS "${CONTROLLER_PORTS[*]}" QUORUM_VOTERS "$VOTERS" BOOTSTRAP "$BOOTSTRAP" \
    KAFKA_CLUSTER_ID "${KAFKA_CLUSTER_ID:-$(cat "$CLUSTER_ID_FILE" 2>/dev/null || echo '(random, at first up)')}" \
    KAFKA_REPLICATION_FACTOR "$RF" KAFKA_MIN_ISR "$MIN_ISR" KAFKA_HEAP_OPTS "$HEAP_OPTS" \
    KAFKA_JVM_OPTS "$JVM_OPTS" KAFKA_CDS "$CDS" KAFKA_START_TIMEOUT "$START_TIMEOUT" \
    KAFKA_QUORUMLESS_GRACE "$QUORUMLESS_GRACE" CLIENT_CONFIG "$CLIENT_CONFIG_FILE"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    clean) cmd_clean ;;
    kill) signal_node "${1:-}" KILL "killed (SIGKILL)" ;;
    stop) cmd_stop "${1:-}" ;;
    start) cmd_start "${1:-}" ;;
    pause) signal_node "${1:-}" STOP "paused (SIGSTOP)" ;;
    resume) signal_node "${1:-}" CONT "resumed (SIGCONT)" ;;
    leader) cmd_leader "$@" ;;
    describe) cmd_describe "${1:-}" ;;
    bootstrap) echo "$BOOTSTRAP" ;;
    client-config) [[ -f "$CLIENT_CONFIG_FILE" ]] || write_client_configs; echo "$CLIENT_CONFIG_FILE" ;;
    logs) check_node "${1:-}"; knode "$1" logs ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) usage >&2; return 2 ;;
  esac
}

main "$@"
