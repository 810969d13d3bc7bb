# redrived container image: multi-stage, Debian 12 packages only, non-root.
#
#   docker build -t redrive/redrived .
#   docker run --rm -e REDRIVE_REDIS_URL=redis://redis:6379/0 redrive/redrived
#
# The runtime image has no redis-server: set REDRIVE_REDIS_URL (the embedded
# Redis is for local development with scripts/run.sh).

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      libabsl-dev libhiredis-dev libevent-dev nlohmann-json3-dev libspdlog-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY daemon daemon
COPY client client
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DREDRIVE_BUILD_TESTS=OFF -DREDRIVE_BUILD_BENCH=OFF \
    && cmake --build /build --target redrived redrivectl \
    && strip /build/daemon/redrived /build/client/redrivectl

FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libhiredis0.14 libevent-core-2.1-7 libevent-pthreads-2.1-7 \
      libabsl20220623 libspdlog1.10 libfmt9 libssl3 ca-certificates \
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
ENTRYPOINT ["/usr/local/bin/redrived"]
