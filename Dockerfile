# redrived container image: multi-stage, Debian 12 packages only, non-root.
#
#   docker build -t redrive/redrived:0.1.0 .
#   docker run --rm -e REDRIVE_REDIS_URL=redis://redis:6379/0 redrive/redrived:0.1.0
#
# The runtime image has no redis-server: set REDRIVE_REDIS_URL (the embedded
# Redis is for local development with scripts/run.sh).
#
# Linted in CI (ctest dockerfile_lint_test: tests/deploy/dockerfile.test.mjs,
# rules in tests/deploy/dockerfile_lint_rules.yaml).
#
# Base images are pinned by digest (the multi-arch index of the official
# debian 12.11 and 12.11-slim images), so a rebuild starts from the same bytes.
# These two digests were NOT verified against the registry when they were
# written (no registry access there): they are the ones public builds of
# debian:12.11 / debian:12.11-slim resolved to. Before relying on them, and to
# move to a newer point release, check and update both with
#   docker buildx imagetools inspect debian:12 | head -3
#   docker buildx imagetools inspect debian:12-slim | head -3
# (a wrong digest fails the build; it cannot pull another image).
ARG BUILD_IMAGE=debian:12.11@sha256:b6507e340c43553136f5078284c8c68d86ec8262b1724dde73c325e8d3dcdeba
ARG RUNTIME_IMAGE=debian:12.11-slim@sha256:2424c1850714a4d94666ec928e24d86de958646737b1d113f5b2207be44d37d8

FROM ${BUILD_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      libabsl-dev libhiredis-dev libevent-dev nlohmann-json3-dev libspdlog-dev libssl-dev \
      libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY daemon daemon
COPY client client
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF -DREDRIVE_BUILD_BENCH=OFF \
      -DREDRIVE_BUILD_EXAMPLES=OFF \
    && cmake --build /build --target redrived redrivectl \
    && strip /build/daemon/redrived /build/client/redrivectl

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
# OCI image annotations (https://github.com/opencontainers/image-spec, annotations.md).
# `docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=...`
ARG CREATED=unknown
LABEL org.opencontainers.image.title="redrived" \
      org.opencontainers.image.description="redrive sidecar: durable per-handler retries and dead-letter queues on Redis Streams over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libhiredis0.14 libevent-core-2.1-7 libevent-pthreads-2.1-7 libevent-2.1-7 \
      libabsl20220623 libspdlog1.10 libfmt9 libssl3 ca-certificates \
      libevent-extra-2.1-7 zlib1g libc-ares2 libre2-9 libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 redrive \
    && useradd --system --uid 10001 --gid redrive --no-create-home --shell /usr/sbin/nologin redrive \
    && install -d -o redrive -g redrive -m 0750 /run/redrive
COPY --from=build /build/daemon/redrived /usr/local/bin/redrived
# The operator CLI, for `kubectl exec ... -- redrivectl --addr unix:/run/redrive/redrive.sock`.
COPY --from=build /build/client/redrivectl /usr/local/bin/redrivectl
USER 10001:10001
# API on a Unix socket in a shared volume (sidecar) and on loopback; health
# alone on the pod network for kubelet gRPC probes.
ENV REDRIVE_GRPC_LISTEN=unix:/run/redrive/redrive.sock,127.0.0.1:50051 \
    REDRIVE_HEALTH_LISTEN=0.0.0.0:8081 \
    REDRIVE_LOG_FORMAT=json
EXPOSE 8081
# Healthy while the daemon answers SERVING on its health-only listener (the
# process works and Redis answers; README "Health, liveness and listeners").
# `redrivectl health` exits 0 only for SERVING. Kubernetes ignores this and
# uses the manifests' gRPC probes (deploy/kustomize).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/redrivectl", "health", "--addr", "127.0.0.1:8081", "--timeout", "3"]
ENTRYPOINT ["/usr/local/bin/redrived"]
