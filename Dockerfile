# roomd container images: build with the Rust toolchain, run as a non-root user in a slim Debian
# image that holds the binary, CA certificates and the recording converters (janus-tools,
# ffmpeg: target `roomd`, the default), or the binary and Debian's Janus, run as an external media
# node by `roomd janus-node` (target `janus`). Both run as uid 10001 and share
# /var/lib/roomd-media (stream files written by Janus, recordings converted by roomd).
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs askama.toml ./
COPY bench/Cargo.toml bench/
RUN mkdir -p src tests/api migrations bench/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked -p roomd \
    && rm -rf src tests migrations
COPY src src
COPY console console
COPY migrations migrations
COPY tests/api tests/api
# Touch the sources so cargo sees them as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p roomd && cp target/release/roomd /usr/local/bin/roomd

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin roomd \
    && mkdir -p /var/lib/roomd && chown roomd:roomd /var/lib/roomd && chmod 0700 /var/lib/roomd \
    && mkdir -p /var/lib/roomd-media && chown roomd:roomd /var/lib/roomd-media
COPY --from=build /usr/local/bin/roomd /usr/local/bin/roomd

# Janus from Debian's package, configured and supervised by `roomd janus-node` (see the compose
# file's `janus` service). Only the VideoRoom plugin and the HTTP/WebSocket transports run.
FROM runtime AS janus
RUN apt-get update \
    && apt-get install -y --no-install-recommends janus \
    && rm -rf /var/lib/apt/lists/*
USER roomd
EXPOSE 8088 7088 8188
ENTRYPOINT ["roomd"]
CMD ["janus-node"]

# roomd converts recordings with janus-pp-rec (Debian's janus-tools) and cuts and measures them
# with ffmpeg.
FROM runtime AS roomd
RUN apt-get update \
    && apt-get install -y --no-install-recommends janus-tools ffmpeg \
    && rm -rf /var/lib/apt/lists/*
USER roomd
# The master key file (master.key) lives here unless ROOMD_MASTER_KEY(_FILE) is set: keep it on a
# volume, since secrets sealed under it cannot be opened with another.
ENV ROOMD_BIND=0.0.0.0:8080 ROOMD_DATA_DIR=/var/lib/roomd
VOLUME /var/lib/roomd
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["roomd", "healthcheck"]
ENTRYPOINT ["roomd"]
CMD ["serve"]
