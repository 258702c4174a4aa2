#!/usr/bin/env bash
# Kind cluster + local registry + vtp namespace, Prefect worker and MinIO, then images and pools.
# Needs docker, kind and kubectl. Run from the repository root: deploy/kind/up.sh
set -euo pipefail
reg_name=kind-registry
reg_port=5001
tag=${VTP_IMAGE_TAG:-dev}

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

kubectl apply -f deploy/kind/namespace.yaml -f deploy/kind/rbac.yaml -f deploy/kind/minio.yaml
kubectl apply -f deploy/kind/worker.yaml
set -a; . deploy/env/kind.env; set +a
uv run vtp pools create --target kind
uv run prefect --no-prompt deploy --all
