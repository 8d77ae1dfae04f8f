# The msa binary in a small image: every service, the gateway and the single server are
# `msa <command>`. Build: docker build -t msa . ; run the single server: docker run -p 8080:8080 msa
FROM rust:1-bookworm AS build
WORKDIR /src
# librdkafka is built from source (rdkafka's bundled build): it needs make, gcc and these headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libsasl2-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin msa && cp target/release/msa /usr/local/bin/msa

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libsasl2-2 libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home msa
COPY --from=build /usr/local/bin/msa /usr/local/bin/msa
USER 10001
WORKDIR /data
ENV MSA_LISTEN=0.0.0.0:8080 \
    MSA_DATA_DIR=/data \
    MSA_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s --retries=20 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["msa"]
CMD ["serve"]
