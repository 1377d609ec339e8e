#!/usr/bin/env bash
# Make the Debian 12 base image of deploy/container/Containerfile from Debian
# packages, without any container registry: mmdebstrap (minbase variant:
# Essential + apt) writes a root file system as a tar stream, podman imports
# it as localhost/debian:bookworm. Needs root, mmdebstrap and podman
# (Debian packages). About one minute; skipped when the image exists unless
# --force.
#
# Usage: deploy/container/base.sh [--force] [IMAGE]   (default localhost/debian:bookworm)
set -euo pipefail
force=0
image=localhost/debian:bookworm
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    *) image=$a ;;
  esac
done
if [ "$force" = 0 ] && podman image exists "$image"; then
  echo "base.sh: $image exists (--force to make it again)"
  exit 0
fi
mmdebstrap --quiet --variant=minbase bookworm - | podman import --quiet - "$image" >/dev/null
echo "base.sh: $image made from Debian bookworm packages"
