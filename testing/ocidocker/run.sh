#!/usr/bin/env bash
# Issue 19's acceptance with the real docker client (make oci-docker):
#
#   a compose cluster of its own (project pier-ocidocker, ports 127.0.0.1:2808N,
#   access control on), a token "ocidocker" made with the admin token, `docker login`
#   on node 1 with it (the registry token flow), `docker push` of a local image
#   to node 1, `docker pull` from node 3 gives the same repo digest; then the
#   raft leader is killed (node 1 when node 3 leads) and a pull from another
#   node still gives it.
#
# Nothing is pulled from any registry: the image is built FROM scratch here,
# with a small layer and one of 6 MiB (random, so no other run shares it),
# which docker sends as a chunked upload (POST, PATCH, PUT). dockerd treats
# 127.0.0.0/8 as an insecure registry, so plain http works; the script checks.
# The cluster, its volumes, the test images and the docker credentials are
# removed on exit, also on failure and Ctrl-C.
#
# Needs: docker (an engine that answers), docker-compose, curl, and the image
# in $PIER_IMAGE (make oci-docker builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${PIER_IMAGE:-pier:ocidocker}
COMPOSE=${COMPOSE:-docker-compose}
export COMPOSE_PROJECT_NAME=pier-ocidocker PIER_HTTP_PREFIX=2808 PIER_AUTH=true PIER_IMAGE=$IMAGE
port() { echo "${PIER_HTTP_PREFIX}$1"; }
REPO=pier-test/hello
TAG=v1

work=$(mktemp -d)
export DOCKER_CONFIG=$work/docker-config # docker login's credentials stay here
mkdir -p "$DOCKER_CONFIG"
t0=$(date +%s)
ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { awk -v a="$1" -v b="$(ms)" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }
log() { echo "ocidocker [$(( $(date +%s) - t0 ))s]: $*"; }
fail() { echo "ocidocker: FAIL: $*" >&2; exit 1; }

cleanup() {
  st=$?
  if [ $st != 0 ]; then
    $COMPOSE logs --tail 30 >&2 2>/dev/null || true
  fi
  for n in 1 2 3 4; do docker rmi -f "127.0.0.1:$(port $n)/$REPO:$TAG" >/dev/null 2>&1 || true; done
  $COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $st
}
trap cleanup EXIT
trap 'exit 130' INT TERM

docker info --format '{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}' | grep -q '127.0.0.0/8' ||
  fail "dockerd does not treat 127.0.0.0/8 as an insecure registry; plain http would be refused"

# --- the cluster -------------------------------------------------------------
$COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true # a leftover of a killed run
$COMPOSE up -d pier1 pier2 pier3 pier4 pier5 >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }
deadline=$(( $(date +%s) + 90 ))
until [ "$(for n in 1 2 3 4 5; do curl -fsS -m 1 "http://127.0.0.1:$(port $n)/readyz" >/dev/null 2>&1 && echo ok; done | wc -l)" = 5 ]; do
  [ "$(date +%s)" -lt $deadline ] || fail "the cluster was not ready after 90s"
  sleep 0.5
done
log "5 nodes ready on 127.0.0.1:$(port 1)..$(port 5)"

# The first leader wrote the admin token into its data dir (README, Access
# control); the image has no shell, so docker cp streams it out as a tar.
admin=
deadline=$(( $(date +%s) + 30 ))
while [ -z "$admin" ]; do
  for n in 1 2 3 4 5; do
    admin=$(docker cp "$($COMPOSE ps -q pier$n):/data/admin.token" - 2>/dev/null | tar -xO 2>/dev/null | tr -d '[:space:]') || true
    [ -n "$admin" ] && break
  done
  [ -n "$admin" ] || { [ "$(date +%s)" -lt $deadline ] || fail "no node holds admin.token after 30s"; sleep 0.5; }
done
secret=$(curl -fsS -m 10 -X POST "http://127.0.0.1:$(port 1)/api/v1/tokens" -H "Authorization: Bearer $admin" \
  -d "{\"name\":\"ocidocker\",\"owner\":\"ci\",\"scopes\":[\"push:pier-test/*\",\"pull:pier-test/*\"]}" |
  sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
[ -n "$secret" ] || fail "creating the token ocidocker"

# Without credentials the registry asks for a bearer from its own realm.
challenge=$(curl -sS -m 5 -o /dev/null -D - "http://127.0.0.1:$(port 1)/v2/" | tr -d '\r' | grep -i '^www-authenticate: bearer' || true)
case "$challenge" in
  *"realm=\"http://127.0.0.1:$(port 1)/v2/token\""*) ;;
  *) fail "GET /v2/ without credentials: no bearer challenge ($challenge)" ;;
esac

# docker logs in as "ci", which is not the token's name: basic auth on /v2/
# would be refused for it (the user must be the token's name there), so a
# push that works shows docker went through the token flow.
st=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -u "ci:$secret" "http://127.0.0.1:$(port 1)/v2/")
[ "$st" = 401 ] || fail "basic auth as ci on /v2/: $st, want 401"
login() {
  echo "$secret" | timeout 60 docker login "127.0.0.1:$(port "$1")" -u ci --password-stdin >"$work/login.log" 2>&1 ||
    { cat "$work/login.log" >&2; fail "docker login on node $1"; }
}

# --- the image -----------------------------------------------------------------
mkdir -p "$work/ctx"
echo "hello from pier's ocidocker test" > "$work/ctx/hello.txt"
head -c $(( 6 << 20 )) /dev/urandom > "$work/ctx/big.bin"
printf 'FROM scratch\nCOPY hello.txt /hello.txt\nCOPY big.bin /big.bin\n' > "$work/ctx/Dockerfile"
ref1="127.0.0.1:$(port 1)/$REPO:$TAG"
docker build -q -t "$ref1" "$work/ctx" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "docker build"; }
log "built $ref1 (FROM scratch, 2 layers, one of 6 MiB)"

# --- push to node 1 ------------------------------------------------------------
login 1
s=$(ms)
out=$(timeout 180 docker push "$ref1") || fail "docker push: $out"
pushed=$(echo "$out" | sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p')
[ -n "$pushed" ] || fail "no digest in docker push's output: $out"
log "pushed to node 1: $pushed in $(secs "$s")s"
docker rmi -f "$ref1" >/dev/null

# pull names the repository on node n and checks the repo digest.
pull() {
  local n=$1 ref="127.0.0.1:$(port "$1")/$REPO:$TAG" got s
  s=$(ms)
  timeout 180 docker pull -q "$ref" >/dev/null || return 1
  got=$(docker inspect --format '{{index .RepoDigests 0}}' "$ref")
  docker rmi -f "$ref" >/dev/null
  [ "${got#*@}" = "$pushed" ] || fail "pull from node $n gave $got, pushed $pushed"
  log "pulled from node $n: ${got#*@} in $(secs "$s")s"
}

# --- pull from node 3 ----------------------------------------------------------
login 3
pull 3 || fail "docker pull from node 3"

# A bearer for the repository does not reach another: ci may not pull
# outside pier-test/.
tok=$(curl -fsS -m 5 -u "ci:$secret" "http://127.0.0.1:$(port 3)/v2/token?service=pier&scope=repository:$REPO:pull&scope=repository:other/x:pull" |
  sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || fail "no bearer from /v2/token"
st=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:$(port 3)/v2/other/x/tags/list")
[ "$st" = 401 ] || fail "a bearer of $REPO on other/x: $st, want 401"

# --- the leader killed, pull from another node ---------------------------------
leader=$(curl -fsS -m 5 -H "Authorization: Bearer $admin" "http://127.0.0.1:$(port 3)/api/v1/status" |
  sed -n 's/.*"leader": *"pier\([1-5]\)[^"]*".*/\1/p')
victim=${leader:-1}
[ "$victim" != 3 ] || victim=1
from=4
[ "$victim" != 4 ] || from=2
docker kill "$($COMPOSE ps -q pier$victim)" >/dev/null
log "killed node $victim (the leader was node ${leader:-unknown})"
login $from
# A read behind a new leader waits for its election: retry, bounded.
deadline=$(( $(date +%s) + 60 ))
until pull $from; do
  [ "$(date +%s)" -lt $deadline ] || fail "docker pull from node $from with node $victim down, for 60s"
  sleep 1
done
log "PASS: pushed to node 1, pulled from node 3 and, with node $victim killed, from node $from: $pushed"
