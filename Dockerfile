# syntax=docker/dockerfile:1
# rootwarden container image: build with `docker build -t rootwarden .` from the repo root
# (BuildKit, the default builder since Docker 23, is needed for the cache mounts).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the build directory between builds, so a source
# change does not download and rebuild every dependency. The binary is copied out of the
# cache mount because the mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/rootwarden /out/rootwarden

# distroless/cc: glibc, libgcc, OpenSSL and CA certificates, no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="rootwarden" \
      org.opencontainers.image.description="AWS centralized root access task daemon"
COPY --from=builder /out/rootwarden /usr/local/bin/rootwarden
# The shipped configuration; Kubernetes mounts its ConfigMap over /etc/rootwarden, ECS overrides
# the queue URLs with ROOTWARDEN_* environment variables.
COPY deploy/rootwarden.toml /etc/rootwarden/rootwarden.toml
# Containers are reached from outside their network namespace: listen on every interface.
ENV ROOTWARDEN_TELEMETRY__LISTEN=0.0.0.0:9464
# 65532 is distroless's "nonroot" user; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9464
STOPSIGNAL SIGTERM
# checkov:skip=CKV_DOCKER_2:No HEALTHCHECK on purpose: ECS runs `rootwarden healthcheck` from the task definition and Kubernetes probes /healthz and /readyz; a Docker HEALTHCHECK would be ignored by both.
ENTRYPOINT ["/usr/local/bin/rootwarden"]
CMD ["run"]
