# The two commands of the README. Each installs what it needs.
.PHONY: demo test bench env env-stop

# Runs the daemon's main job against the embedded local AWS environment.
demo:
	scripts/demo

# Runs every test.
test:
	scripts/test

# Runs the benchmarks and rewrites BENCHMARKS.md.
bench:
	scripts/bench

# Keeps a seeded local AWS environment running with a ready configuration, and prints what to
# run by hand; env-stop stops it (and a daemon started as it says).
env:
	scripts/env start

env-stop:
	scripts/env stop

# Builds the container image from the Dockerfile with its real base images (rust, distroless):
# needs Docker with BuildKit and access to Docker Hub and gcr.io, as in CI before the push to
# ECR. `make image IMAGE=name:tag` names it. Without registries, image/test builds and checks
# the same Dockerfile with local stand-ins.
.PHONY: image
image:
	docker build -t $(or $(IMAGE),rootwarden:dev) .
