# Multi-stage build: compile in the Rust image, run from a small non-root runtime image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin sio-edge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home sio
COPY --from=build /src/target/release/sio-edge /usr/local/bin/sio-edge
USER 10001
ENV SOCKET_IO_HOST=0.0.0.0 SOCKET_IO_PORT=3001
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:3001/health || exit 1
ENTRYPOINT ["/usr/local/bin/sio-edge"]
