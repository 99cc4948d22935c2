# Builds the Parley API server.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p parley-api -p parley-migration

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/parley parley
COPY --from=build /src/target/release/parley /usr/local/bin/parley
COPY --from=build /src/target/release/parley-migrate /usr/local/bin/parley-migrate
USER parley
WORKDIR /var/lib/parley
ENV PARLEY_HOST=0.0.0.0 PARLEY_PORT=8080 LOG_FORMAT=json
EXPOSE 8080
CMD ["parley"]
