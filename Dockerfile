# The gateway's container image: `docker build -t ai-gateway .` (or `podman build`).
#
#   docker run --rm -p 50051:50051 -p 8080:8080 -p 9090:9090 ai-gateway          # serve (mock)
#   docker run --rm -e DATABASE_URL=postgresql://... ai-gateway migrate           # schema
#
# Two stages: the builder makes a virtualenv and installs the project into it with the lock file
# (`constraints.txt`: the exact versions the tests ran with; runtime dependencies only, no dev
# extras); the final stage is the same slim base plus that virtualenv and nothing of the source
# tree. Both stages use one base so the venv's interpreter link (/usr/local/bin/python3.11)
# resolves in the final image.

# Pin by digest in production (python:3.11-slim-bookworm@sha256:...), or point this at a mirror.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv

WORKDIR /src
# Only what `pip install .` reads: the build metadata, the lock file and the five packages.
COPY pyproject.toml README.md constraints.txt ./
COPY gateway ./gateway
COPY providers ./providers
COPY resilience ./resilience
COPY cache ./cache
COPY metrics ./metrics
# Every pinned runtime dependency has a manylinux wheel for CPython 3.11, so no compiler is
# needed. The cache mount keeps downloaded wheels between builds (BuildKit and Buildah both
# honour it) without putting them in a layer. pip compiles the .pyc files here, which matters:
# in Kubernetes the root filesystem is read-only, so Python cannot write them at run time.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install -c constraints.txt . \
    && /opt/venv/bin/ai-gateway --help >/dev/null


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="ai-gateway" \
      org.opencontainers.image.description="An LLM gateway with a first-class gRPC API and the same calls as JSON." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid so Kubernetes' runAsUser/fsGroup and volume ownership can name it.
# /var/lib/ai-gateway holds what the embedded defaults write: the SQLite usage store and the
# usage spill file (in Kubernetes an emptyDir is mounted there).
RUN groupadd --gid 10001 aigw \
    && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
       --home-dir /var/lib/ai-gateway --shell /usr/sbin/nologin aigw \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/ai-gateway

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND_HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////var/lib/ai-gateway/ai-gateway.db \
    USAGE_SPILL_PATH=/var/lib/ai-gateway/usage.spill.jsonl

WORKDIR /var/lib/ai-gateway
USER 10001:10001

# gRPC, JSON shim, Prometheus /metrics (GRPC_PORT, HTTP_PORT, METRICS_PORT).
EXPOSE 50051 8080 9090

# Exec form: `ai-gateway` (the venv's console script) is PID 1 and receives SIGTERM itself. No
# init (tini, `docker run --init`) is needed: the gateway installs its own SIGTERM/SIGINT
# handlers (the kernel's PID-1 rule only drops signals that have no handler) and starts no child
# processes, so there are no zombies to reap. On SIGTERM it turns NOT_SERVING, drains for
# SHUTDOWN_GRACE_SECONDS (20) and exits 0: give it longer than that before SIGKILL
# (`docker stop -t 30`, compose `stop_grace_period`, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# No HEALTHCHECK: Kubernetes ignores it (deploy/kubernetes uses native gRPC probes) and
# deploy/compose.yaml declares its own against /readyz.
ENTRYPOINT ["ai-gateway"]
CMD ["serve"]
