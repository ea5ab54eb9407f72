# tblogd container image. Multi-stage: the build stage has the -dev packages,
# builds and tests; the runtime stage has only the shared libraries.
#   podman build -t tblogd .      (or docker build)
#   podman run -v $PWD/logs:/logs -p 6066:6066 tblogd
# Build arguments: TBLOG_JOBS (parallel build jobs), TBLOG_RUN_TESTS (1 = run
# the unit tests in the build stage).

FROM debian:bookworm AS build
ARG TBLOG_JOBS=2
ARG TBLOG_RUN_TESTS=0
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
      libabsl-dev libspdlog-dev libfmt-dev libcli11-dev libpng-dev zlib1g-dev libcpp-httplib-dev \
      prometheus-cpp-dev libisal-dev \
      libgtest-dev libgmock-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY base base
COPY proto proto
COPY server server
COPY client client
COPY tests tests
COPY bench bench
COPY examples examples
# Only the daemon is built unless the tests run: nothing else is shipped.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DTBLOG_BUILD_TESTS=$([ "$TBLOG_RUN_TESTS" = 1 ] && echo ON || echo OFF) \
      -DTBLOG_BUILD_BENCHMARKS=OFF \
 && cmake --build /build -j "$TBLOG_JOBS" $([ "$TBLOG_RUN_TESTS" = 1 ] || echo --target tblogd) \
 && if [ "$TBLOG_RUN_TESTS" = 1 ]; then ctest --test-dir /build -E 'e2e|python|install' --output-on-failure; fi \
 && strip /build/server/daemon/tblogd

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libspdlog1.10 libfmt9 libpng16-16 zlib1g \
      libcpp-httplib0.11 libprometheus-cpp-core1.0 libisal2 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent tblog \
 && mkdir -p /logs /run/tblog && chown 10001:10001 /logs /run/tblog && chmod 0755 /logs /run/tblog
COPY --from=build /build/server/daemon/tblogd /usr/local/bin/tblogd
# Fails the build here, not at first start, if a shared library is missing.
RUN /usr/local/bin/tblogd --version
# /run/tblog: where a unix socket goes. A named volume mounted there (compose)
# starts as a copy of this directory, so it is the daemon's, not root's.
# The socket is 0660 (--unix-socket-mode), group 10001 unless
# TBLOG_UNIX_SOCKET_GROUP says otherwise: a trainer of another uid joins
# group 10001 (compose group_add, a pod's fsGroup). Files are 0644 and
# directories 0755 (--file-mode, --dir-mode): TensorBoard of any uid reads.
USER 10001:10001
VOLUME ["/logs"]
# gRPC (TCP) and Prometheus metrics.
EXPOSE 6066 9100
ENV TBLOG_LOGDIR=/logs \
    TBLOG_LISTEN=0.0.0.0:6066 \
    TBLOG_METRICS_LISTEN=0.0.0.0:9100 \
    TBLOG_HEALTH_ADDRESS=127.0.0.1:6066
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/tblogd", "health"]
STOPSIGNAL SIGTERM
LABEL org.opencontainers.image.title="tblogd" \
      org.opencontainers.image.description="Writes TensorBoard logs for training processes that stream to it over gRPC" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/tblogd"]
