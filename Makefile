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

# `make soak`: release build, then SOAK_SECONDS (default 600) of normal and hostile load
# (forwarding attackers included) with the proxy's RSS sampled every second and another
# client's miss and forwarded-HGET p99 per 10 s; fails if the proxy dies. `make bench` runs
# it last for BENCH_SOAK_SECONDS (600; 0 skips it); the bench report charts the last soak. See
# scripts/soak.sh (SOAK_SECONDS=60 make soak for a quick check).
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

# `make bench-forward`: forwarded HGET and LRANGE, GET misses and hits, -P 1 and -P 16, the
# proxy against twemproxy (nutcracker) and Redis, and the -P 8 suite with PROXY_FORWARD=all
# (also run by `make bench`). See scripts/bench-forward.sh and BENCHMARKS.md.
.PHONY: bench-forward
bench-forward: ensure-redis build
	@scripts/bench-forward.sh

# `make bench-tls`: HTTPS hits, full and resumed handshakes, the proxy against nginx with
# the same certificate and TLS version (also run by `make bench`). See scripts/bench-tls.sh.
.PHONY: bench-tls
bench-tls: ensure-redis build
	@scripts/bench-tls.sh

# `make redis-suite`: Redis's own test suite (its Tcl runtest, external mode, units type/*,
# multi, pubsub, scripting) directly against redis-server and through the proxy, as an
# anonymous client and as an admin principal; the ratios and the failures grouped by cause in
# target/bench/redis-suite.json. Needs REDIS_SRC (a folder with Redis's runtest and tests/),
# else it prints how to get one and skips; `make bench` runs it when REDIS_SRC is set. See
# scripts/redis-suite.sh.
.PHONY: redis-suite
redis-suite: ensure-redis build
	@scripts/redis-suite.sh
