# ProxyRedis: `make run` starts the proxy (with a local Redis when none is reachable),
# `make test` runs every check CI runs. See README.md.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test lint fmt build clean bench bench-cache ensure-redis ensure-test-tools \
	ensure-client-libs

build:
	$(CARGO) build --release

ensure-redis:
	@scripts/ensure-redis.sh

ensure-test-tools:
	@scripts/ensure-test-tools.sh

# redis-py, node-redis and ioredis at their pinned versions, for tests/client_compat.rs.
ensure-client-libs:
	@scripts/ensure-client-libs.sh

run: ensure-redis build
	@scripts/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test: ensure-redis ensure-test-tools ensure-client-libs lint
	$(CARGO) test --all-features

fmt:
	$(CARGO) fmt --all

bench: ensure-redis build
	@scripts/bench.sh

bench-cache:
	$(CARGO) bench --bench lru

clean:
	$(CARGO) clean

# `make soak`: release build, then SOAK_SECONDS (default 600) of normal and hostile load with
# the proxy's RSS sampled every second; fails if the proxy dies. See scripts/soak.sh.
.PHONY: soak
soak: ensure-redis
	@scripts/soak.sh

# `make run-cluster`: a local six-node Redis Cluster, three release proxies and HAProxy in
# front (HTTP 8000, RESP 6380, stats 8404); Ctrl-C stops everything. See scripts/run-cluster.sh.
.PHONY: run-cluster
run-cluster: ensure-redis build
	@scripts/run-cluster.sh

# `make bench-cluster`: miss and hit throughput against one Redis and a three-master
# cluster, and latency and errors through a failover, a reshard and a stopped master
# (also run by `make bench`). See scripts/bench-cluster.sh and BENCHMARKS.md.
.PHONY: bench-cluster
bench-cluster: ensure-redis build
	@scripts/bench-cluster.sh

# `make bench-tls`: HTTPS hits, full and resumed handshakes, the proxy against nginx with
# the same certificate and TLS version (also run by `make bench`). See scripts/bench-tls.sh.
.PHONY: bench-tls
bench-tls: ensure-redis build
	@scripts/bench-tls.sh
