# The lab in a container: `lab fakes`, `lab web`, `lab worker` (see
# docker-compose.yml). Multi-stage: the build image compiles, the runtime
# image holds only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# .git is not copied: pass the commit to label workers' default
# --code-version (docker compose build --build-arg GIT_COMMIT=$(git rev-parse --short HEAD)).
ARG GIT_COMMIT=
ENV IDEMLAB_GIT_COMMIT=$GIT_COMMIT
COPY . .
RUN cargo build --release --locked --bin lab

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lab /usr/local/bin/lab
COPY scenarios /srv/idemlab/scenarios
WORKDIR /srv/idemlab
ENTRYPOINT ["lab"]
CMD ["--help"]
