#!/usr/bin/env bash
# The database servers the backend tests and benchmarks use, installed and started on loopback.
#
#   scripts/services.sh start [postgres|cassandra]...   install if missing, start, wait until ready
#   scripts/services.sh stop  [postgres|cassandra]...
#   scripts/services.sh status
#   scripts/services.sh env                             the test variables, for `eval`
#
# Idempotent: a server that already runs is left alone. With no server named, both.
#
# PostgreSQL 15 comes from Debian's packages (apt-get, as root) and listens on 127.0.0.1:5432
# with trust authentication and a database `test`. Apache Cassandra 5.0 comes from Maven Central
# (the cassandra-all jar and its dependencies, resolved by scripts/cassandra/pom.xml into
# $EVENTSOURCING_SERVICES_CACHE, default ~/.cache/eventsourcing-services) and listens on
# 127.0.0.1:9042 with scripts/cassandra/cassandra.yaml, a small heap and its data under
# $EVENTSOURCING_SERVICES_RUN (default /tmp/eventsourcing-services).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${EVENTSOURCING_SERVICES_CACHE:-$HOME/.cache/eventsourcing-services}"
run="${EVENTSOURCING_SERVICES_RUN:-/tmp/eventsourcing-services}"

pg_version=15
pg_port=5432
cassandra_version="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$here/cassandra/pom.xml")"
cassandra_port=9042
cassandra_lib="$cache/cassandra-$cassandra_version/lib"
cassandra_dir="$run/cassandra"
cassandra_pid="$cassandra_dir/cassandra.pid"
cassandra_log="$cassandra_dir/cassandra.log"

say() { printf 'services: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- PostgreSQL -------------------------------------------------------------------------------

pg_bin="/usr/lib/postgresql/$pg_version/bin"

pg_install() {
  [ -x "$pg_bin/postgres" ] && command -v pg_ctlcluster >/dev/null && return 0
  say "installing postgresql-$pg_version from Debian's packages"
  as_root apt-get update -qq || fail "apt-get update failed: are Debian's package mirrors reachable?"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$pg_version" >/dev/null \
    || fail "apt-get install postgresql-$pg_version failed"
}

pg_configure() {
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
    as_root pg_createcluster "$pg_version" main --port "$pg_port" >/dev/null \
      || fail "pg_createcluster $pg_version main failed"
  fi
  local conf="/etc/postgresql/$pg_version/main"
  # Trust on loopback only: the tests connect as postgres without a password.
  if ! grep -q '^# eventsourcing test access' "$conf/pg_hba.conf"; then
    as_root sh -c "printf '%s\n' '# eventsourcing test access' \
      'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust' \
      'local all all trust' > '$conf/pg_hba.conf.new' && cat '$conf/pg_hba.conf' >> '$conf/pg_hba.conf.new' \
      && mv '$conf/pg_hba.conf.new' '$conf/pg_hba.conf'"
  fi
  as_root sh -c "printf '%s\n' \"listen_addresses = '127.0.0.1'\" 'port = $pg_port' \
    'max_connections = 200' 'fsync = on' > '$conf/conf.d/eventsourcing.conf'"
}

pg_start() {
  pg_install
  pg_configure
  if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    say "starting PostgreSQL $pg_version on 127.0.0.1:$pg_port"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start \
      || fail "PostgreSQL did not start; its log: /var/log/postgresql/postgresql-$pg_version-main.log"
  fi
  for _ in $(seq 1 60); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.5
  done
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" \
    || fail "PostgreSQL does not accept connections on 127.0.0.1:$pg_port; its log: /var/log/postgresql/postgresql-$pg_version-main.log"
  if ! psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc 'create database test' \
      || fail "could not create the database test"
  fi
  say "PostgreSQL ready: postgres://postgres@127.0.0.1:$pg_port/test"
}

pg_stop() {
  if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop || true
  fi
}

pg_status() {
  if [ -x "$pg_bin/pg_isready" ] && "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    echo "postgres: running on 127.0.0.1:$pg_port"
  else
    echo "postgres: not running"
  fi
}

# --- Cassandra --------------------------------------------------------------------------------

cassandra_install() {
  [ -f "$cassandra_lib/.complete" ] && return 0
  command -v mvn >/dev/null || fail "Maven (mvn) is needed to fetch Cassandra from Maven Central"
  command -v java >/dev/null || fail "Java 17 is needed to run Cassandra"
  say "fetching Apache Cassandra $cassandra_version and its dependencies from Maven Central"
  rm -rf "$cassandra_lib"
  mkdir -p "$cassandra_lib"
  (cd "$here/cassandra" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$cassandra_lib") \
    || fail "Maven could not resolve org.apache.cassandra:cassandra-all:$cassandra_version"
  touch "$cassandra_lib/.complete"
}

# True when the pid file names a live Cassandra of ours (a pid reused by another process after
# a reboot or a new container does not count).
cassandra_running() {
  [ -f "$cassandra_pid" ] || return 1
  local pid; pid="$(cat "$cassandra_pid")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q CassandraDaemon
}

cassandra_start() {
  cassandra_install
  # A server of ours that is starting opens its port soon; one that was killed is gone soon.
  for _ in $(seq 1 240); do
    cassandra_running || break
    if port_open "$cassandra_port"; then
      say "Cassandra ready: cassandra://127.0.0.1:$cassandra_port"
      return 0
    fi
    sleep 0.5
  done
  cassandra_running && fail "Cassandra (pid $(cat "$cassandra_pid")) runs but did not open 127.0.0.1:$cassandra_port; its log: $cassandra_log"
  port_open "$cassandra_port" && fail "something else listens on 127.0.0.1:$cassandra_port"
  mkdir -p "$cassandra_dir/data"
  : > "$cassandra_log"
  say "starting Cassandra $cassandra_version on 127.0.0.1:$cassandra_port (data in $cassandra_dir/data)"
  local opts=()
  # The JDK 17 module flags and JVM settings of Cassandra's conf/jvm17-server.options.
  while IFS= read -r line; do
    case "$line" in ''|'#'*) ;; *) opts+=("$line") ;; esac
  done < "$here/cassandra/jvm17.options"
  # setsid: the server outlives the shell that started it (CI starts it, then runs cargo).
  setsid java -Xms768m -Xmx768m -Xss512k "${opts[@]}" \
    -Dcassandra.config="file://$here/cassandra/cassandra.yaml" \
    -Dcassandra.storagedir="$cassandra_dir/data" \
    -Dcassandra.logfile="$cassandra_log" \
    -Dlogback.configurationFile="$here/cassandra/logback.xml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.jmx.local.port=7199 \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=100 \
    -Dcassandra.superuser_setup_delay_ms=0 \
    -cp "$cassandra_lib/*" org.apache.cassandra.service.CassandraDaemon \
    > "$cassandra_dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$cassandra_pid"
  # A cold JVM on 2 cores takes 10-60 s to open the native port.
  for _ in $(seq 1 240); do
    port_open "$cassandra_port" && break
    cassandra_running || { tail -n 30 "$cassandra_log" "$cassandra_dir/stdout.log" >&2 || true
      fail "Cassandra exited during start-up; its log: $cassandra_log"; }
    sleep 0.5
  done
  port_open "$cassandra_port" || { tail -n 30 "$cassandra_log" >&2 || true
    fail "Cassandra did not open 127.0.0.1:$cassandra_port within 120 s; its log: $cassandra_log"; }
  say "Cassandra ready: cassandra://127.0.0.1:$cassandra_port"
}

cassandra_stop() {
  if cassandra_running; then
    local pid; pid="$(cat "$cassandra_pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$cassandra_pid"
}

cassandra_status() {
  if cassandra_running && port_open "$cassandra_port"; then
    echo "cassandra: running on 127.0.0.1:$cassandra_port (pid $(cat "$cassandra_pid"))"
  elif cassandra_running; then
    echo "cassandra: starting (pid $(cat "$cassandra_pid"))"
  else
    echo "cassandra: not running"
  fi
}

# --- main -------------------------------------------------------------------------------------

command="${1:-status}"
shift || true
services=("$@")
[ ${#services[@]} -eq 0 ] && services=(postgres cassandra)
for service in "${services[@]}"; do
  case "$service" in postgres|cassandra) ;; *) fail "unknown service '$service' (postgres or cassandra)" ;; esac
done

case "$command" in
  start) for s in "${services[@]}"; do "${s/postgres/pg}_start"; done ;;
  stop) for s in "${services[@]}"; do "${s/postgres/pg}_stop"; done ;;
  status) pg_status; cassandra_status ;;
  env)
    echo "export EVENTSOURCING_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/test"
    echo "export EVENTSOURCING_TEST_CASSANDRA_URL=cassandra://127.0.0.1:$cassandra_port/eventsourcing_test"
    ;;
  *) fail "unknown command '$command' (start, stop, status or env)" ;;
esac
