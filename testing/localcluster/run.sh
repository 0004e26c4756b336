#!/usr/bin/env bash
# Starts a 3-node Pier cluster on 127.0.0.1 in the foreground, data under
# ./data/, and prints commands to try. Ctrl-C stops all three nodes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PIER_BIN:-./bin/pier}
N=3
pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping ${#pids[@]} nodes..."
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

mkdir -p data
cmds=()
for i in $(seq 1 $N); do
  join=()
  [ "$i" -gt 1 ] && join=(--join 127.0.0.1:7941)
  args=(serve --id "node$i" --data-dir "data/node$i"
    --http-addr "127.0.0.1:808$i" --gossip-addr "127.0.0.1:794$i" --raft-addr "127.0.0.1:830$i"
    --bootstrap-expect $N --cluster-key "${PIER_CLUSTER_KEY:-local-dev-key}" --auth="${PIER_AUTH:-false}" "${join[@]}" ${PIER_FLAGS:-})
  cmds+=("$BIN ${args[*]}")
  "$BIN" "${args[@]}" > >(sed -u "s/^/[node$i] /") 2>&1 &
  pids+=($!)
done

# Wait (bounded) until every node reports ready.
for i in $(seq 1 $N); do
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:808$i/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:808$i/readyz" >/dev/null 2>&1 || { echo "node$i did not become ready" >&2; exit 1; }
done

cat <<'TOUR'

Pier is up: node1 http://127.0.0.1:8081, node2 :8082, node3 :8083. Try:

  echo "hello pier" > myapp-v1.2.3.jar
  curl -X POST -F "file=@myapp-v1.2.3.jar" http://127.0.0.1:8081/upload
  curl -fO http://127.0.0.1:8083/artifacts/myapp-v1.2.3.jar
  curl -X PUT "http://127.0.0.1:8082/api/v1/tags/production-ready?name=myapp-v1.2.3.jar"
  curl -fLOJ --output-dir "$(mktemp -d)" "http://127.0.0.1:8083/api/v1/latest?prefix=myapp-&tag=production-ready"
  curl http://127.0.0.1:8082/api/v1/cluster/members
  ./bin/pier members --server 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083

Access control is off here (each node warned at start), so the curl lines need no token.
PIER_AUTH=true make run turns it on: the leader writes the admin token to
data/nodeN/admin.token, and every curl line then takes -H "Authorization: Bearer $TOKEN".

Ctrl-C stops all three nodes.
TOUR
echo
echo "Each node's command line (to start one again after killing it, from this directory):"
for c in "${cmds[@]}"; do echo "  $c"; done
wait
