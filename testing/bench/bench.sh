#!/usr/bin/env bash
# make bench: Pier (3 local `pier serve` nodes) against nginx (one node, PUT
# via its dav module) on this machine, in one run, and against MinIO and
# SeaweedFS when their binaries are given. Installs nginx and wrk with
# apt-get when they are missing (never MinIO or SeaweedFS: those are the
# user's own builds), builds the driver and runs it.
# See BENCHMARKS.md. Not part of `make test`.
#
# Knobs (environment): BENCH_BIG=1G BENCH_MEDIUM=64M BENCH_REPS=5
# BENCH_BIG_REPS=3 BENCH_OBJECTS=1000 BENCH_WRK_DURATION=10s BENCH_KEEP=1
# BENCH_WORKDIR=/tmp BENCH_MD=bin/bench-results.md BENCH_WAVE_SIZE=256M
# BENCH_WAVE_CLIENTS=32,128 BENCH_MINIO=/path/to/minio
# BENCH_SEAWEEDFS=/path/to/weed BENCH_PROFILE=dir; extra arguments go to
# the driver (bin/benchrun -h lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "bench: no apt-get here; install $* yourself" >&2; exit 1; }
  if [ "$updated" = 0 ]; then
    "${sudo[@]}" apt-get update -qq
    updated=1
  fi
  echo "bench: apt-get install $*" >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# nginx with the dav module (PUT): on Debian 12 the nginx package has it
# built in and nginx-light depends on nginx; older releases differ, so try
# each package that exists and check `nginx -V` after installing it.
has_dav() { command -v nginx >/dev/null 2>&1 && nginx -V 2>&1 | grep -q -- '--with-http_dav_module'; }
if ! has_dav; then
  [ "$updated" = 1 ] || { "${sudo[@]}" apt-get update -qq; updated=1; }
  for pkg in nginx-light nginx nginx-full; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then
      apt_install "$pkg"
      has_dav && break
    fi
  done
  has_dav || { echo "bench: no nginx with http_dav_module could be installed" >&2; exit 1; }
fi
command -v wrk >/dev/null 2>&1 || apt_install wrk

[ -x bin/pier ] || { echo "bench: bin/pier missing; run make bench (it builds first)" >&2; exit 1; }
mkdir -p bin
"$GO" build -o bin/benchrun ./testing/bench/cmd/benchrun
exec bin/benchrun -pier bin/pier -md "${BENCH_MD:-bin/bench-results.md}" "$@"
