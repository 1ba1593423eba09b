#!/bin/sh
# What a hostile PR's build or test command tries (tests/jobs/test_sandbox.py): each line prints ESCAPED:<what>
# only if the escape worked. Arguments: the worker's pid, a loopback port of the host, BOT_DATA_DIR, a marker.
H=$1 PORT=$2 DATA=$3 MARK=$4
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f"; done 2>/dev/null | grep -q PLANTED && echo "ESCAPED:environ"
tr '\0' '\n' < "/proc/$H/environ" 2>/dev/null | grep -q PLANTED && echo "ESCAPED:worker-environ"
nsenter --net="/proc/$H/ns/net" true 2>/dev/null && echo "ESCAPED:nsenter-net"
nsenter --target "$H" --mount --pid true 2>/dev/null && echo "ESCAPED:nsenter-mnt"
python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)" "$PORT" 2>/dev/null \
  && echo "ESCAPED:host-loopback"
touch /usr/escape 2>/dev/null && echo "ESCAPED:write-usr"
touch "$DATA/escape" 2>/dev/null && echo "ESCAPED:write-data"
cat "$DATA/bot.toml" 2>/dev/null | grep -q PLANTED && echo "ESCAPED:read-config"
ls "$DATA" 2>/dev/null | grep -q . && echo "ESCAPED:list-data"
grep -q root /etc/shadow 2>/dev/null && echo "ESCAPED:shadow"
ls /root 2>/dev/null | grep -q . && echo "ESCAPED:root-home"
kill -0 "$H" 2>/dev/null && echo "ESCAPED:signal-worker"
echo ok > written-inside
setsid sh -c "sleep ${MARK}7" >/dev/null 2>&1 &
(sh -c "sleep ${MARK}7 &" &)
echo "PROBES DONE"
