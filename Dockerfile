# scimsync: the daemon (and, for the demo stack, the emulators).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p scimsync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/scimsync --create-home scimsync
COPY --from=build /src/target/release/scimsync /usr/local/bin/scimsync
USER scimsync
WORKDIR /var/lib/scimsync
ENTRYPOINT ["scimsync"]
CMD ["daemon", "--config", "/config/scimsync.toml"]
