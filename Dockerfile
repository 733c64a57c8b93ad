# syntax=docker/dockerfile:1
# MESP forecast server, CPU build. GPU variant: Dockerfile.gpu.
#   docker build -t mesp .
#   docker run -p 8080:8080 mesp

ARG GO_VERSION=1.26
ARG ORT_VERSION=1.29.0

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# the commit `mesp version` names (the context has no .git): --build-arg COMMIT=$(git describe --always --dirty)
ARG COMMIT=unknown
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.commit=${COMMIT}" -o /out/mesp ./cmd/mesp

# The official ONNX Runtime CPU build, from the onnxruntime-node npm package
# (the file onnxruntime_go v1.33.0 speaks to), verified by sha256.
FROM node:20-bookworm-slim AS ort
ARG ORT_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /ort
RUN npm pack "onnxruntime-node@${ORT_VERSION}" \
 && tar -xzf "onnxruntime-node-${ORT_VERSION}.tgz" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
 && echo "89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d  package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c - \
 && mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /ort/libonnxruntime.so.1

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u* curl=7.88.1-10+deb12u* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /srv/mesp mesp
COPY --from=build /out/mesp /usr/local/bin/mesp
COPY --from=ort /ort/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
COPY models /srv/mesp/models
ENV MESP_ORT__LIBRARY=/usr/local/lib/libonnxruntime.so.1 \
    MESP_MODELS=/srv/mesp/models \
    MESP_SERVER__ADDR=0.0.0.0:8080 \
    MESP_LOG__FORMAT=json
# numeric, so that Kubernetes runAsNonRoot can verify it; the user is "mesp"
USER 10001
WORKDIR /srv/mesp
# 8080: HTTP; 9091: KEDA's external scaler protocol (gRPC), when scaler.grpc_addr is set
EXPOSE 8080 9091
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s CMD ["curl", "-fsS", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/mesp"]
CMD ["serve"]
