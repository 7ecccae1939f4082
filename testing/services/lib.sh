# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this
# Shared helpers for testing/services/{up,down,avro-tools}. Sourced, not run.
# Everything here writes to stderr; only `up` prints (export lines) to stdout.

SERVICES_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_HOME/../.." && pwd)"
STATE_DIR="${LUMEN_SERVICES_DIR:-$HOME/.cache/lumen/services}"
CACHE_DIR="$STATE_DIR/cache"
ALL_SERVICES=(cassandra kafka s3 prism chromium flink)

# Ports (all bound to 127.0.0.1 only).
CASSANDRA_PORT="${LUMEN_CASSANDRA_PORT:-19042}"
CASSANDRA_STORAGE_PORT="${LUMEN_CASSANDRA_STORAGE_PORT:-17000}"
CASSANDRA_JMX_PORT="${LUMEN_CASSANDRA_JMX_PORT:-17199}"
KAFKA_PORT="${LUMEN_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${LUMEN_KAFKA_CONTROLLER_PORT:-19093}"
S3_PORT="${LUMEN_S3_PORT:-19000}"
FLINK_PORT="${LUMEN_FLINK_PORT:-18099}"
FLINK_ARTIFACT_PORT="${LUMEN_FLINK_ARTIFACT_PORT:-18098}"
FLINK_EXPANSION_PORT="${LUMEN_FLINK_EXPANSION_PORT:-18097}"
PRISM_PORT="${LUMEN_PRISM_PORT:-18073}"
PRISM_WEB_PORT="${LUMEN_PRISM_WEB_PORT:-18074}"   # 0: no web UI

# Versions (Maven coordinates are in pom.xml; these override its defaults).
CASSANDRA_VERSION="${LUMEN_CASSANDRA_VERSION:-5.0.9}"
KAFKA_VERSION="${LUMEN_KAFKA_VERSION:-4.4.0}"
AVRO_TOOLS_VERSION="${LUMEN_AVRO_TOOLS_VERSION:-1.12.0}"
MOTO_VERSION="${LUMEN_MOTO_VERSION:-5.2.1}"   # only used when moto_server is not on PATH

# Heaps, small enough for a 2-core CI box running everything at once.
CASSANDRA_HEAP="${LUMEN_CASSANDRA_HEAP:-1g}"
KAFKA_HEAP="${LUMEN_KAFKA_HEAP:-512m}"
FLINK_HEAP="${LUMEN_FLINK_HEAP:-1g}"

# Readiness timeout per server, seconds.
SERVICES_TIMEOUT="${LUMEN_SERVICES_TIMEOUT:-240}"

note() { printf 'services: %s\n' "$*" >&2; }

svc_dir() { printf '%s/%s' "$STATE_DIR" "$1"; }
svc_log() { printf '%s/%s/%s.log' "$STATE_DIR" "$1" "$1"; }
svc_pidfile() { printf '%s/%s/%s.pid' "$STATE_DIR" "$1" "$1"; }

# Marker placed in the environment of every server we start, so that a pid
# from a pid file is only trusted (and only ever signalled) if it is ours.
svc_marker() { printf '%s@%s' "$1" "$STATE_DIR"; }

valid_service() {
  local s
  for s in "${ALL_SERVICES[@]}"; do [[ "$1" == "$s" ]] && return 0; done
  return 1
}

# pid_is_ours NAME PID: the process is alive and carries our marker.
pid_is_ours() {
  local name="$1" pid="$2"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  has_marker "$pid" "LUMEN_SERVICE_MARKER=$(svc_marker "$name")"
}

# has_marker PID VAR=VALUE: the process's environment contains exactly VAR=VALUE.
has_marker() {
  local env
  env="$(tr '\0' '\n' 2>/dev/null <"/proc/$1/environ")" || return 1
  [[ $'\n'"$env"$'\n' == *$'\n'"$2"$'\n'* ]]
}

# svc_pid NAME: print the pid of our running server NAME, or fail.
svc_pid() {
  local name="$1" pidfile pid
  pidfile="$(svc_pidfile "$name")"
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  pid_is_ours "$name" "$pid" || return 1
  printf '%s' "$pid"
}

# Pids of every process carrying NAME's marker (finds servers whose pid file
# was lost, e.g. after an interrupted `up`).
marked_pids() {
  local name="$1" marker p
  marker="LUMEN_SERVICE_MARKER=$(svc_marker "$name")"
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    if has_marker "$p" "$marker"; then printf '%s\n' "$p"; fi
  done
  return 0
}

proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }

# proc_gone PID: the process has fully exited (its sockets are closed): no
# /proc entry, or a zombie with no thread left. (A JVM's main thread can be a
# zombie while its other threads still hold the process's files.)
proc_gone() {
  [[ -d "/proc/$1" ]] || return 0
  [[ "$(proc_state "$1")" == Z ]] || return 1
  local -a tasks=("/proc/$1/task/"*)
  [[ ${#tasks[@]} -le 1 ]]
}

# Is anything listening on 127.0.0.1:PORT (or the wildcard)?
port_listening() {
  [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | head -n 3 >&2 || true
}

log_tail() {
  local name="$1" log
  log="$(svc_log "$name")"
  if [[ -s "$log" ]]; then
    printf -- '----- last 40 lines of %s -----\n' "$log" >&2
    tail -n 40 "$log" | cut -c1-400 >&2
    printf -- '----- end of %s -----\n' "$log" >&2
  fi
}

# stop_services GRACE NAME...: stop every process of the named servers (pid
# file first, then any marked leftovers): SIGTERM to all of them at once, wait
# up to GRACE seconds, then SIGKILL what is left. Removes the pid files.
stop_services() {
  local grace="$1"; shift
  local name pid i v
  local -a victims=()   # "name:pid"
  for name in "$@"; do
    local -a pids=()
    if pid="$(svc_pid "$name")"; then pids+=("$pid"); fi
    for pid in $(marked_pids "$name"); do
      [[ " ${pids[*]} " == *" $pid "* ]] || pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
      note "$name: stopping pid $pid"
      kill -TERM "$pid" 2>/dev/null || true
      # A server that a test left SIGSTOPped would never act on SIGTERM.
      kill -CONT "$pid" 2>/dev/null || true
      victims+=("$name:$pid")
    done
    rm -f "$(svc_pidfile "$name")"
  done
  ((${#victims[@]})) || return 0
  local -a left=()
  for ((i = 0; ; i++)); do
    left=()
    for v in "${victims[@]}"; do
      # While a process exits its environment already reads as empty, so the
      # marker is not re-checked here.
      pid="${v#*:}"
      proc_gone "$pid" || left+=("$v")
    done
    ((${#left[@]})) || return 0
    if ((i == grace * 10)); then
      for v in "${left[@]}"; do
        note "${v%%:*}: pid ${v#*:} still running after ${grace}s, sending SIGKILL"
        kill -KILL "${v#*:}" 2>/dev/null || true
      done
    elif ((i > grace * 10 + 50)); then
      note "could not stop: ${left[*]}"
      return 1
    fi
    victims=("${left[@]}")
    sleep 0.1
  done
}

stop_service() { stop_services "${2:-30}" "$1"; }

# Take the global state lock (serialises concurrent up/down/avro-tools fetches).
take_lock() {
  mkdir -p "$STATE_DIR"
  exec {LUMEN_LOCK_FD}>"$STATE_DIR/.lock"
  if ! flock -w "${LUMEN_SERVICES_LOCK_TIMEOUT:-900}" "$LUMEN_LOCK_FD"; then
    note "could not take $STATE_DIR/.lock (another up/down still running?)"
    exit 1
  fi
}

# ---------------------------------------------------------------------------
# Maven: resolve a pom.xml profile to a classpath, cached in $CACHE_DIR.
# ---------------------------------------------------------------------------

mvn_cmd() {
  local -a opts=()
  # Extra options for every mvn call, e.g. LUMEN_MAVEN_OPTS=-Dmaven.repo.local=/tmp/m2
  # shellcheck disable=SC2206
  [[ -n "${LUMEN_MAVEN_OPTS:-}" ]] && opts=(${LUMEN_MAVEN_OPTS})
  mvn -B -Dstyle.color=never --no-transfer-progress -f "$SERVICES_HOME/pom.xml" "${opts[@]}" "$@"
}

hash_of() { printf '%s' "$*" | cat - "$SERVICES_HOME/pom.xml" | sha256sum | cut -c1-16; }

# classpath_file PROFILE [-Dprop=value...]: where that classpath is cached,
# keyed by (pom.xml, profile, properties, LUMEN_MAVEN_OPTS).
classpath_file() {
  local profile="$1"; shift
  printf '%s/%s-%s.classpath' "$CACHE_DIR" "$profile" "$(hash_of "$profile $* ${LUMEN_MAVEN_OPTS:-}")"
}

# classpath_cached PROFILE [-Dprop=value...]: the cached classpath, if valid.
classpath_cached() {
  local cpfile entry
  cpfile="$(classpath_file "$@")"
  [[ -s "$cpfile" ]] || return 1
  local -a entries=()
  IFS=: read -r -a entries <"$cpfile" || true
  ((${#entries[@]})) || return 1
  for entry in "${entries[@]}"; do
    [[ -e "$entry" ]] || return 1
  done
  cat "$cpfile"
}

# classpath_for PROFILE [-Dprop=value...]: print the classpath (":"-joined),
# resolving it with Maven (downloading into ~/.m2) unless a valid cached one
# exists. A cache naming a jar that has disappeared (wiped ~/.m2) is redone.
classpath_for() {
  local profile="$1"; shift
  local cpfile mvnlog tmp
  classpath_cached "$profile" "$@" && return 0
  mkdir -p "$CACHE_DIR"
  cpfile="$(classpath_file "$profile" "$@")"
  mvnlog="$CACHE_DIR/mvn-$profile.log"
  tmp="$cpfile.tmp.$$"
  note "$profile: resolving jars with Maven (first run downloads them into ~/.m2; log: $mvnlog)"
  local start=$SECONDS
  if ! mvn_cmd -P "$profile" "$@" dependency:build-classpath -Dmdep.outputFile="$tmp" >"$mvnlog" 2>&1; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$cpfile"
  note "$profile: jars resolved in $((SECONDS - start))s"
  cat "$cpfile"
}

# Why did the last classpath_for PROFILE fail? "missing" (artifact not served)
# or "error" (anything else: network, bad pom...).
mvn_failure_kind() {
  local mvnlog="$CACHE_DIR/mvn-$1.log"
  if grep -qE 'Could not find artifact|Failure to find|was not found in|was cached in the local repository' "$mvnlog" 2>/dev/null; then
    echo missing
  else
    echo error
  fi
}

mvn_failure_tail() {
  local mvnlog="$CACHE_DIR/mvn-$1.log"
  grep -E '^\[ERROR\]' "$mvnlog" 2>/dev/null | head -n 5 >&2 || true
  note "full Maven log: $mvnlog"
}
