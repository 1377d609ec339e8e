#!/bin/bash
# Container health check: GET /healthz on the admin listener (no token), with
# bash's /dev/tcp so that the image needs no HTTP client. Exit 0 on a 200.
# OPALE_ADMIN_PORT: the admin port (default 9901, admin.port in the config).
set -u
port=${OPALE_ADMIN_PORT:-9901}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
read -r -t 2 status_line <&3 || exit 1
case "$status_line" in
  "HTTP/1.1 200"*|"HTTP/1.0 200"*) exit 0 ;;
  *) exit 1 ;;
esac
