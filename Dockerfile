# The one image: `ensemble operator`, `ensemble server` and the other subcommands.
#
#   docker build -t ensemble:0.1.0 .
#
# Stage 1 builds the release binary; stage 2 is distroless with only that binary, running as the
# non-root user 65532 (the "restricted" Pod Security Standard needs a non-root user).

FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Dependencies first, with stub sources, so that a change to our code does not rebuild them.
# A new workspace member needs its manifest and a stub here.
COPY Cargo.toml Cargo.lock ./
COPY crates/ensemble-server/Cargo.toml crates/ensemble-server/Cargo.toml
COPY crates/ensemble-lincheck/Cargo.toml crates/ensemble-lincheck/Cargo.toml
# Not a stub: openraft, a dependency, is built against it (the root manifest's [patch.crates-io]).
COPY crates/base2histogram crates/base2histogram
RUN mkdir -p src crates/ensemble-server/src crates/ensemble-lincheck/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch crates/ensemble-server/src/lib.rs crates/ensemble-lincheck/src/lib.rs \
 && cargo build --release --locked --bin ensemble \
 && rm -rf src crates/ensemble-server/src crates/ensemble-lincheck/src

# Then the whole tree (less .dockerignore), so that a build script or an include_str! finds its
# files. COPY keeps the files' old modification times, which can be earlier than the stub build's
# artifacts; touching the sources makes cargo rebuild our crates instead of reusing the stubs.
# crates/base2histogram was built from its real sources above, so it is left alone.
COPY . .
RUN find src crates -path crates/base2histogram -prune -o -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin ensemble \
 && cp target/release/ensemble /ensemble

# glibc and libgcc, CA certificates, a nonroot user (65532) and nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /ensemble /usr/local/bin/ensemble
USER 65532:65532
# 2181 ZooKeeper clients, 2888 peers (Raft), 8080 admin API, metrics and probes.
EXPOSE 2181 2888 8080
ENTRYPOINT ["/usr/local/bin/ensemble"]
