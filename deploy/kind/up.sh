#!/usr/bin/env bash
# Kind cluster + local registry + vtp namespace, Prefect worker and MinIO, then images and pools.
# Needs docker, kind and kubectl. Run from the repository root: deploy/kind/up.sh
# Secrets: vtp-storage (MinIO's credentials, random, made once) and vtp-prefect-auth (the host's
# Prefect auth string). Their values go to kubectl on stdin only: never in argv, never printed
# (so do not run this with bash -x).
set -euo pipefail
reg_name=kind-registry
reg_port=5001
tag=${VTP_IMAGE_TAG:-dev}

# The auth string of the Prefect server on the host (`vtp up` saves it there, mode 0600). Read
# before deploy/env/kind.env, which sets VTP_HOME for the pods.
auth_file="${VTP_HOME:-$HOME/.vtp}/prefect_auth"
prefect_auth=${VTP_PREFECT_AUTH_STRING:-}
if [ -z "$prefect_auth" ] && [ -r "$auth_file" ]; then
  prefect_auth=$(<"$auth_file")
fi
if [ -z "$prefect_auth" ]; then
  echo "deploy/kind/up.sh: no Prefect auth string: set VTP_PREFECT_AUTH_STRING, or run \`vtp up\` once" \
    "(it saves one to $auth_file)" >&2
  exit 1
fi

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
# secret_manifest NAME KEY VALUE [KEY VALUE ...]: an Opaque Secret in vtp, on stdout.
secret_manifest() {
  local name=$1
  shift
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: vtp\ntype: Opaque\ndata:\n' "$name"
  while [ $# -gt 0 ]; do
    printf '  %s: %s\n' "$1" "$(b64 "$2")"
    shift 2
  done
}

if [ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != 'true' ]; then
  docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge --name "$reg_name" registry:2
fi
kind get clusters | grep -qx vtp || kind create cluster --config deploy/kind/cluster.yaml
for node in $(kind get nodes --name vtp); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${reg_port}"
  printf '[host."http://%s:5000"]\n' "$reg_name" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${reg_port}/hosts.toml"
done
docker network connect kind "$reg_name" 2>/dev/null || true
kubectl apply -f deploy/kind/registry-configmap.yaml

for fw in ultralytics timm huggingface; do
  docker build -f docker/trainer.Dockerfile --build-arg FRAMEWORK="$fw" -t "localhost:${reg_port}/vtp-${fw}:${tag}" .
  docker push "localhost:${reg_port}/vtp-${fw}:${tag}"
done
docker build -f docker/platform.Dockerfile -t "localhost:${reg_port}/vtp-platform:${tag}" .
docker push "localhost:${reg_port}/vtp-platform:${tag}"

kubectl apply -f deploy/kind/namespace.yaml -f deploy/kind/rbac.yaml

# MinIO's credentials: random, made only when missing (MinIO keeps its data under them).
if ! kubectl -n vtp get secret vtp-storage >/dev/null 2>&1; then
  secret_manifest vtp-storage AWS_ACCESS_KEY_ID "vtp-$(rand_hex 8)" AWS_SECRET_ACCESS_KEY "$(rand_hex 24)" \
    AWS_DEFAULT_REGION us-east-1 | kubectl create -f - >/dev/null
  echo "created Secret vtp/vtp-storage (random MinIO credentials)"
fi
# The Prefect auth string: made when missing, replaced when the host's changed (the worker restarts).
restart_worker=false
current=$(kubectl -n vtp get secret vtp-prefect-auth -o 'jsonpath={.data.auth-string}' 2>/dev/null || true)
if [ "$current" != "$(b64 "$prefect_auth")" ]; then
  secret_manifest vtp-prefect-auth auth-string "$prefect_auth" | kubectl apply -f - >/dev/null
  echo "wrote Secret vtp/vtp-prefect-auth (the Prefect server's auth string)"
  if [ -n "$current" ]; then restart_worker=true; fi
fi
unset current

kubectl apply -f deploy/kind/networkpolicy.yaml -f deploy/kind/minio.yaml
kubectl apply -f deploy/kind/worker.yaml
if [ "$restart_worker" = true ]; then
  kubectl -n vtp rollout restart deployment/prefect-worker
fi
set -a; . deploy/env/kind.env; set +a
# The host's Prefect clients below send the same auth string.
export PREFECT_API_AUTH_STRING="$prefect_auth" VTP_PREFECT_AUTH_STRING="$prefect_auth"
uv run vtp pools create --target kind
uv run prefect --no-prompt deploy --all
