# syntax=docker/dockerfile:1
# Kafscale broker image. Build from the repository root:
#
#   docker build -t kafscale:0.1.0 .
#
# (BuildKit, Docker's default builder since 23.0: the runtime stage bind-mounts the wheels.)
# Stage "build" compiles the Cython kernels into kafscale's wheel and collects a wheel
# of every dependency; stage "runtime" is a slim Python 3.11 with no compilers that
# installs only those wheels (offline) and runs `kafscale serve` as a non-root user.
# The `local` extra (the etcd and SeaweedFS binaries of the local default, ~211 MB) is
# neither collected nor installed: in Kubernetes the broker is always given endpoints.
# The broker is configured by KAFSCALE_* variables (docs/configuration.md); the Helm
# chart in charts/kafscale sets them.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY kafscale ./kafscale
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="kafscale" \
      org.opencontainers.image.description="Kafka-protocol broker: stateless brokers, the log in S3, the metadata in etcd" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 kafscale \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kafscale --create-home kafscale
# The wheels are bind-mounted from the build stage, so none of them stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels kafscale \
    && python -c "import kafscale._fast as f; assert f.IMPLEMENTATION == 'cython', f.FALLBACK_REASON"
USER 10001:10001
WORKDIR /var/lib/kafscale
# The root filesystem may be read-only (the chart makes it so): no bytecode writes.
# gRPC's C core would print a non-JSON line per failed TLS handshake to etcd; the
# broker's own log line says why already (docs/security.md, "etcd and S3").
ENV KAFSCALE_LISTEN_HOST=0.0.0.0 \
    KAFSCALE_DATA_DIR=/var/lib/kafscale/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRPC_VERBOSITY=ERROR
EXPOSE 9092 9093
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('KAFSCALE_METRICS_PORT', '9093'), timeout=3)"]
ENTRYPOINT ["kafscale", "serve"]
