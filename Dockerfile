# Multi-stage build: compile the release binary, then ship it on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --bin proxyredis

FROM debian:bookworm-slim
# ca-certificates: the system roots REDIS_TLS=yes trusts without REDIS_TLS_CA_FILE.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home proxyredis
COPY --from=build /src/target/release/proxyredis /usr/local/bin/proxyredis
COPY env /etc/proxyredis/env
USER proxyredis
EXPOSE 8000 6380
ENTRYPOINT ["/usr/local/bin/proxyredis", "--env-file", "/etc/proxyredis/env"]
