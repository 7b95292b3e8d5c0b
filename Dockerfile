# syntax=docker/dockerfile:1
# rootwarden container image. Build it from the repo root with `make image` (= `docker build -t
# rootwarden:dev .`): BuildKit (the default builder since Docker 23) is needed for the cache
# mounts, and the registries of the two base images below must be reachable.
# image/test builds this same file without registries: local stand-ins for both base images and
# a binary built on the host (see image/test).

# Base images, pinned by tag; pass a mirror or a digest with --build-arg. Both are Debian 12:
# the binary needs the glibc it was linked against (2.36) or newer at run time.
# checkov:skip=CKV_DOCKER_7:The FROM lines name build args, which checkov reads as untagged images; their defaults here are pinned tags, never latest (image/test checks it).
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/base-nossl-debian12:nonroot
# Where /out/rootwarden and /out/lib come from: the builder stage (the default), or an image that
# already holds them there (image/test passes one, so its build compiles nothing and skips this
# stage).
ARG BINARY_FROM=builder

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the build directory between builds, so a source
# change does not download and rebuild every dependency. The binary is copied out of the
# cache mount because the mount is not part of the layer. Stripped: the release profile's line
# tables and symbols (for profiling on a workstation) are four fifths of the binary.
# libgcc_s (unwinding) is the one library the binary loads that glibc does not provide.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked \
    && install -D -m 0755 target/release/rootwarden /out/rootwarden \
    && install -D -m 0644 "$(gcc -print-file-name=libgcc_s.so.1)" \
        "/out/lib/$(gcc -print-multiarch)/libgcc_s.so.1"

FROM ${BINARY_FROM} AS binary

# distroless/base-nossl: glibc, CA certificates and tzdata, no shell or package manager. No
# OpenSSL: rootwarden's TLS is rustls with aws-lc, linked in. Its other library, libgcc_s, comes
# from the builder (the Debian 12 package distroless/cc adds, without cc's OpenSSL, libstdc++ and
# libgomp, 8.6 MB rootwarden never loads); image scanners still see glibc, a package of the base.
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="rootwarden" \
      org.opencontainers.image.description="AWS centralized root access task daemon"
COPY --from=binary /out/rootwarden /usr/local/bin/rootwarden
COPY --from=binary /out/lib/ /lib/
# The shipped configuration; Kubernetes mounts its ConfigMap over /etc/rootwarden, ECS overrides
# the queue URLs with ROOTWARDEN_* environment variables.
COPY deploy/rootwarden.toml /etc/rootwarden/rootwarden.toml
# Containers are reached from outside their network namespace: listen on every interface.
ENV ROOTWARDEN_TELEMETRY__LISTEN=0.0.0.0:9464
# 65532 is distroless's "nonroot" user; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9464
# What `docker stop`, ECS and the kubelet send first: rootwarden drains on it (shutdown.grace).
STOPSIGNAL SIGTERM
# checkov:skip=CKV_DOCKER_2:No HEALTHCHECK on purpose: ECS runs `rootwarden healthcheck` from the task definition and Kubernetes probes /healthz and /readyz; a Docker HEALTHCHECK would be ignored by both.
ENTRYPOINT ["/usr/local/bin/rootwarden"]
CMD ["run"]
