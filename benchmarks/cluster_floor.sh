#!/usr/bin/env bash
# The floor for "cluster up": the raw commands a person would type to get a primary, a
# streaming replica and two PgBouncers accepting, with no harness around them. Prints
# READY when all four accept, then tears down once standard input closes.
# Usage: cluster_floor.sh BINDIR   (runs as the postgres user when started as root)
set -euo pipefail
bin=$1
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
d=$(mktemp -d); chmod 755 "$d"; [ "$(id -u)" = 0 ] && chown postgres "$d"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(port); p2=$(port); p3=$(port); p4=$(port)
run "$bin/initdb" -D "$d/primary" -U postgres -A trust --no-sync --no-instructions -E UTF8 >/dev/null
opts="-c listen_addresses=127.0.0.1 -k $d -c wal_level=replica -c max_wal_senders=10 -c hot_standby=on -c fsync=off"
run "$bin/pg_ctl" -D "$d/primary" -o "-p $p1 $opts" -l "$d/primary.log" -w start >/dev/null
run "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$d/replica" -R -X stream -c fast --no-sync
run "$bin/pg_ctl" -D "$d/replica" -o "-p $p2 $opts" -l "$d/replica.log" -w start >/dev/null
for role in writer:$p3:$p1 reader:$p4:$p2; do
  IFS=: read -r name lport sport <<<"$role"
  printf '"postgres" ""\n' >"$d/$name.users"
  cat >"$d/$name.ini" <<INI
[databases]
* = host=127.0.0.1 port=$sport
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $lport
unix_socket_dir = $d
auth_type = trust
auth_file = $d/$name.users
logfile = $d/$name.log
pidfile = $d/$name.pid
INI
  [ "$(id -u)" = 0 ] && chown postgres "$d/$name.ini" "$d/$name.users"
  run pgbouncer -d "$d/$name.ini"
done
until psql -h 127.0.0.1 -p "$p2" -U postgres -Atc "select status from pg_stat_wal_receiver" postgres 2>/dev/null | grep -q streaming; do :; done
until psql -h 127.0.0.1 -p "$p3" -U postgres -Atc "select 1" postgres >/dev/null 2>&1; do :; done
until psql -h 127.0.0.1 -p "$p4" -U postgres -Atc "select 1" postgres >/dev/null 2>&1; do :; done
echo READY
# The caller times the start up to READY; teardown waits for standard input to close.
cat >/dev/null || true
kill "$(cat "$d/writer.pid")" "$(cat "$d/reader.pid")"
run "$bin/pg_ctl" -D "$d/replica" -m immediate stop >/dev/null
run "$bin/pg_ctl" -D "$d/primary" -m immediate stop >/dev/null
rm -rf "$d"
