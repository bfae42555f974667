# syntax=docker/dockerfile:1
#
# trstctl container image: built on Debian 12 with the same scripts/install-deps and meson build
# as a developer machine, then copied into a Debian 12 runtime that holds only the shared
# libraries the binary links (found with ldd + dpkg -S, so the list never drifts from the build)
# and runs as the unprivileged user 65532.
#
#   docker build -t trstctl .            (or: buildah bud -t trstctl .)
#   docker run --rm -p 8443:8443 -e TRSTCTL_POSTGRES_DSN=... -e TRSTCTL_NATS_URL=... trstctl
#
# scripts/build-image builds this same file with buildah, without a registry and without
# compiling twice: DEBIAN_IMAGE is a Debian 12 base made by mmdebstrap from Debian's archive
# (the runtime libraries already in it), and the build context holds only this file and
# scripts/lib/runtime-packages and prebuilt/trstctl, the binary meson built on the same Debian
# 12 (the build stage then skips the compile; the library check below still runs on it).
#
# The eBPF guard is compiled into the binary (bpftool skeleton), so the image needs no other
# file for it; the pod grants the capabilities it needs (see deploy/helm/trstctl).

ARG DEBIAN_IMAGE=debian:12

FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY . .
RUN if [ -f prebuilt/trstctl ]; then \
        install -D -m 0755 prebuilt/trstctl /out/usr/local/bin/trstctl; \
    else \
        apt-get update -qq && scripts/install-deps && rm -rf /var/lib/apt/lists/* \
        && meson setup /build --buildtype=release \
        && ninja -C /build server/trstctl \
        && install -D -m 0755 /build/server/trstctl /out/usr/local/bin/trstctl; \
    fi
# The Debian packages that provide the libraries trstctl links (an unknown one fails the build).
RUN scripts/lib/runtime-packages /out/usr/local/bin/trstctl >/out/runtime-packages \
    && cat /out/runtime-packages

FROM ${DEBIAN_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# Only what the base lacks is fetched: nothing with scripts/build-image's mmdebstrap base.
RUN missing=$(for p in passwd ca-certificates $(cat /tmp/runtime-packages); do \
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
                || echo "$p"; \
        done); \
    if [ -n "$missing" ]; then \
        apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends $missing \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && rm -f /tmp/runtime-packages
# uid/gid 65532 as in the original image and the Helm chart's securityContext.
RUN groupadd --system --gid 65532 trstctl \
    && useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin trstctl \
    && install -d -o 65532 -g 65532 -m 0700 /data /data/secrets /data/ca /run/trstctl
COPY --from=build /out/usr/local/bin/trstctl /usr/local/bin/trstctl

USER 65532:65532
WORKDIR /data
ENV TRSTCTL_STATE_DIR=/data \
    TRSTCTL_SERVER_ADDR=:8443 \
    TRSTCTL_METRICS_ADDR=:9464
# gRPC (TLS) and Prometheus /metrics.
EXPOSE 8443 9464
HEALTHCHECK --interval=20s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/trstctl", "--health-check"]
ENTRYPOINT ["/usr/local/bin/trstctl", "serve"]
