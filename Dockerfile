# tag-server's container image.
#
#   docker build -t tag-server .                          # from source (the default target)
#   docker build -t tag-server --build-arg WITH_MODEL=1 . # with the default embedded model inside
#
# The default target, `runtime`, builds everything in the `build` stage: the server
# (release, linked against DuckDB's official libduckdb, fetched and verified by
# .ci/duckdb), the chat page (.ci/web), and DuckDB's postgres/mysql/sqlite extensions
# (`tag-server fetch-extensions`, verified), so the image needs no network for them.
# The `prebuilt` target puts the same files, built on the host, into the same
# runtime layers: the container test (tests/tests/deploy.rs) uses it, so it never
# compiles DuckDB or llama.cpp a second time inside a container.
#
# Configuration only through TAG_* variables (README.md). State, caches and the
# downloaded model live in one volume, /var/lib/tag.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

FROM ${RUST_IMAGE} AS build
ARG WITH_MODEL=0
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake libclang-dev clang libsqlite3-dev curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target folder and cargo's registry are cache mounts (BuildKit, buildah): kept
# between builds, so a rebuild after a source change is incremental, and never part
# of a layer (a release target folder is gigabytes).
ENV CARGO_TARGET_DIR=/target
RUN --mount=type=cache,target=/target \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/root/.cache/tag-server \
    DUCKDB_LIB_DIR="$(.ci/duckdb)" \
 && export DUCKDB_LIB_DIR \
 && cargo build --release --locked -p tag-server \
 && .ci/web \
 && mkdir -p /out/models \
 && cp /target/release/tag-server "$DUCKDB_LIB_DIR/libduckdb.so" /out/ \
 && cp -r dist /out/web \
 && TAG_EXTENSION_DIR=/out/extensions /out/tag-server fetch-extensions \
 && if [ "$WITH_MODEL" = 1 ]; then TAG_LLM_MODEL_DIR=/out/models /out/tag-server fetch-model; fi

# What both targets share: the system's libraries, the user, the volume, the
# configuration, the health check and the command.
FROM ${BASE_IMAGE} AS base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl libgomp1 libstdc++6 libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /var/lib/tag --create-home tag
ENV HOME=/var/lib/tag \
    TAG_LISTEN=0.0.0.0:8080 \
    TAG_DATA_DIR=/var/lib/tag \
    TAG_LLM_MODEL_DIR=/var/lib/tag/models \
    TAG_WEB_DIR=/opt/tag/web \
    TAG_EXTENSION_DIR=/opt/tag/extensions
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
WORKDIR /var/lib/tag
ENTRYPOINT ["/opt/tag/tag-server"]
CMD ["serve"]

# The test's target: the host's build, laid out by the test in .docker/prebuilt/
# (tag-server, libduckdb.so, web/, extensions/).
FROM base AS prebuilt
COPY .docker/prebuilt/ /opt/tag/
RUN mkdir -p /var/lib/tag/models && chown -R tag:tag /var/lib/tag
USER tag
VOLUME /var/lib/tag

# The image users build (the default target).
FROM base AS runtime
COPY --from=build /out/tag-server /out/libduckdb.so /opt/tag/
COPY --from=build /out/web /opt/tag/web
COPY --from=build /out/extensions /opt/tag/extensions
# The model, when built in, seeds the volume the first time it is mounted.
COPY --from=build /out/models /var/lib/tag/models
RUN chown -R tag:tag /var/lib/tag
USER tag
VOLUME /var/lib/tag
