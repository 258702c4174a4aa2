#!/usr/bin/env bash
# Kind cluster + local registry + vtp namespace, Prefect worker and MinIO (and its bucket), then
# images and pools. Needs docker, kind and kubectl. Run from the repository root: deploy/kind/up.sh
# Pods reach the host's Prefect server and API at VTP_ADVERTISE_HOST (default: the kind network's
# gateway, read from docker); the host's `vtp up` must listen there (docs/deploy.md, Kind).
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
# configmap_manifest NAME KEY VALUE: a ConfigMap in vtp, on stdout (no secrets: plain values).
configmap_manifest() {
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: vtp\ndata:\n  %s: "%s"\n' "$1" "$2" "$3"
}
# The IPv4 gateway of the docker network kind's nodes sit on: the host, as pods see it.
kind_gateway() {
  docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' 2>/dev/null |
    tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | head -n 1 || true
}
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

# The advertised addresses (VTP_API_URL, PREFECT_API_URL) for pods, from deploy/env/kind.env with
# VTP_ADVERTISE_HOST = the kind network's gateway unless set.
gateway=$(kind_gateway)
if [ -z "${VTP_ADVERTISE_HOST:-}" ] && [ -n "$gateway" ]; then
  export VTP_ADVERTISE_HOST="$gateway"
fi
set -a; . deploy/env/kind.env; set +a
case "$VTP_API_URL $PREFECT_API_URL" in
  *127.0.0.1*|*localhost*|*'[::1]'*)
    echo "deploy/kind/up.sh: VTP_API_URL=$VTP_API_URL / PREFECT_API_URL=$PREFECT_API_URL is loopback: inside a pod" \
      "that is the pod itself. Set VTP_ADVERTISE_HOST to the host's address on the kind network." >&2
    exit 1 ;;
esac
echo "pods reach the host at $VTP_ADVERTISE_HOST: API $VTP_API_URL, Prefect $PREFECT_API_URL"

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

# The Prefect API the in-cluster worker uses and hands to its job pods: the advertised one.
current=$(kubectl -n vtp get configmap vtp-endpoints -o 'jsonpath={.data.PREFECT_API_URL}' 2>/dev/null || true)
if [ "$current" != "$PREFECT_API_URL" ]; then
  configmap_manifest vtp-endpoints PREFECT_API_URL "$PREFECT_API_URL" | kubectl apply -f - >/dev/null
  echo "wrote ConfigMap vtp/vtp-endpoints (PREFECT_API_URL=$PREFECT_API_URL)"
  if [ -n "$current" ]; then restart_worker=true; fi
fi
unset current

kubectl apply -f deploy/kind/networkpolicy.yaml -f deploy/kind/minio.yaml
# The bucket of VTP_STORAGE_URL, made by a Job once MinIO answers (again on every run: MinIO's data
# is an emptyDir, and a finished Job cannot be applied anew).
kubectl -n vtp rollout status deployment/minio --timeout=180s
kubectl -n vtp delete job minio-bucket --ignore-not-found >/dev/null
kubectl apply -f deploy/kind/minio-bucket.yaml
if ! kubectl -n vtp wait --for=condition=complete job/minio-bucket --timeout=180s; then
  echo "deploy/kind/up.sh: the bucket Job did not complete; see kubectl -n vtp logs job/minio-bucket" >&2
  exit 1
fi
# MinIO is ClusterIP-only (and its NetworkPolicy admits vtp's pods only); `kubectl port-forward`
# enters the pod directly, so the API and CLI on this host reach it on loopback while that runs.
cat <<EOF

MinIO's bucket is ready. The API and CLI on this host reach MinIO through a port-forward (keep it
running) with the same bucket and credentials (read from the Secret, not printed here):
  kubectl -n vtp port-forward svc/minio 127.0.0.1:9000:9000 &
  export VTP_STORAGE_URL=$VTP_STORAGE_URL VTP_S3_ENDPOINT_URL=http://127.0.0.1:9000 AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID="\$(kubectl -n vtp get secret vtp-storage -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d)"
  export AWS_SECRET_ACCESS_KEY="\$(kubectl -n vtp get secret vtp-storage -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d)"

EOF
kubectl apply -f deploy/kind/worker.yaml
if [ "$restart_worker" = true ]; then
  kubectl -n vtp rollout restart deployment/prefect-worker
fi
# The host's Prefect clients below send the same auth string.
export PREFECT_API_AUTH_STRING="$prefect_auth" VTP_PREFECT_AUTH_STRING="$prefect_auth"
if ! uv run python -c 'import os, sys; from core.prefect_api import server_healthy
sys.exit(0 if server_healthy(os.environ["PREFECT_API_URL"]) else 1)'; then
  echo "deploy/kind/up.sh: no Prefect server answers at $PREFECT_API_URL. Start the host side listening where" \
    "pods reach it, then run deploy/kind/up.sh again (what it made is kept):" >&2
  echo "  VTP_PREFECT_HOST=$VTP_ADVERTISE_HOST VTP_API_HOST=$VTP_ADVERTISE_HOST VTP_ADVERTISE_HOST=$VTP_ADVERTISE_HOST uv run vtp up" >&2
  exit 1
fi
uv run vtp pools create --target kind
uv run prefect --no-prompt deploy --all
echo "Kind is ready: pools <framework>-kind, deployments train-<framework>."
