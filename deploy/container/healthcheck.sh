#!/bin/bash
# Container health check and Kubernetes exec probe: GET PATH (default
# /healthz; /readyz for readiness) on the admin listener, which is on
# loopback by design and needs no token for these two paths. Uses bash's
# /dev/tcp, so the image needs no HTTP client. Exit 0 on a 200, 1 otherwise.
# OPALE_ADMIN_PORT: the admin port (default 9901, admin.port in the config).
set -u
path=${1:-/healthz}
case "$path" in
  /healthz|/readyz) ;;
  *) echo "usage: opale-healthcheck [/healthz|/readyz]" >&2; exit 2 ;;
esac
port=${OPALE_ADMIN_PORT:-9901}
trap '' PIPE   # a peer that closes at once is "unhealthy" (exit 1), not a signal
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3 2>/dev/null || exit 1
read -r -t 2 status_line <&3 || exit 1
case "$status_line" in
  "HTTP/1.1 200"*|"HTTP/1.0 200"*) exit 0 ;;
  *) exit 1 ;;
esac
