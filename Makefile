# The two commands of the README. Each installs what it needs.
.PHONY: demo test bench

# Runs the daemon's main job against the embedded local AWS environment.
demo:
	scripts/demo

# Runs every test.
test:
	scripts/test

# Runs the benchmarks and rewrites BENCHMARKS.md.
bench:
	scripts/bench
