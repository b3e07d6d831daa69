# Builds and runs the Freshet server.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p freshet-server --bin freshet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/freshet /usr/local/bin/freshet
VOLUME /var/lib/freshet
EXPOSE 5477
ENV FRESHET_LISTEN=0.0.0.0:5477 FRESHET_DATA_DIR=/var/lib/freshet
# Freshet accepts connections without a password: publish the port only on
# trusted networks (docker-compose.yml binds it to loopback).
ENTRYPOINT ["freshet"]
