# syntax=docker/dockerfile:1
# The Portway image: one image for both commands (`portway operator`, `portway proxy`).
#   docker build -t ghcr.io/portway/portway:0.1.0 .
#   hack/image/build.sh      the same recipe without Docker (buildah), see hack/image/README.md
#
# Stage 1 (a Node.js image with Debian) compiles the TypeScript, installs the production
# dependencies (compiling the re2 addon once) and assembles the run-time filesystem in /rootfs:
# distroless-style, just the Node binary, the C/C++ run-time libraries from Debian packages
# (libc6, libgcc-s1, libstdc++6), CA certificates, /usr/bin/env (for bin/portway.js's #!) and
# /etc/passwd. Stage 2 is that filesystem plus the program: no shell, no npm, no package manager,
# no @kubernetes/client-node (a devDependency: only its types are used).
# Runs as the non-root user 1337 (the chart and the rendered gateway pods expect that UID).
# Node.js is PID 1: bin/portway.js and the commands handle SIGTERM (see bin/portway.js).

# The build stage's base: Node 24 LTS on Debian. hack/image/base.sh makes a local stand-in of
# the same Node version and Debian suite (it reads this line).
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Build tools, and the Debian packages of the run-time filesystem (unpacked, not installed).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && mkdir -p /tmp/debs /rootfs && chown _apt /tmp/debs && cd /tmp/debs \
 && apt-get download libc6 libgcc-s1 libstdc++6 \
 && for deb in *.deb; do dpkg-deb -x "$deb" /rootfs; done \
 && rm -rf /tmp/debs /var/lib/apt/lists/* \
 && rm -rf /rootfs/usr/share/doc /rootfs/usr/share/lintian /rootfs/usr/share/gdb /rootfs/usr/share/gcc \
      /rootfs/usr/lib/x86_64-linux-gnu/gconv /rootfs/usr/lib/x86_64-linux-gnu/audit /rootfs/usr/libexec \
 && mkdir -p /rootfs/usr/local/bin /rootfs/usr/bin /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/app \
 && chmod 1777 /rootfs/tmp \
 && cp "$(command -v node)" /rootfs/usr/local/bin/node \
 && cp /usr/bin/env /rootfs/usr/bin/env \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nportway:x:1337:1337:portway:/tmp:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nportway:x:1337:\n' > /rootfs/etc/group \
 && printf 'passwd: files\ngroup: files\nhosts: files dns\n' > /rootfs/etc/nsswitch.conf \
 && ln -s /app/bin/portway.js /rootfs/usr/local/bin/portway \
 && chroot /rootfs /usr/local/bin/node -e 'process.exit(0)'
COPY package.json package-lock.json ./
# Production dependencies in /prod, with re2 compiled for this Node (the slow step: its own
# layer, reused while package-lock.json is unchanged). re2 is a native addon: its install
# script fetches a prebuilt binary or compiles one with node-gyp, here with the headers of the
# image's own Node (nodedir; no download from nodejs.org). Only re2's addon is kept of its
# build, stripped of debug symbols.
RUN mkdir /prod && cp package.json package-lock.json /prod/ && cd /prod \
 && npm ci --omit=dev --ignore-scripts && npm_config_nodedir=/usr/local npm rebuild re2 \
 && rm -rf node_modules/re2/vendor node_modules/re2/build/Release/obj.target node_modules/re2/build/Release/.deps \
      node_modules/re2/build/Makefile node_modules/re2/build/*.mk node_modules/re2/build/config.gypi \
 && strip --strip-unneeded node_modules/re2/build/Release/re2.node \
 && node -e 'new (require("re2"))("a+").test("aa") || process.exit(1)' \
 && npm cache clean --force
# Every dependency for the compiler (scripts skipped: the "prepare" build needs the sources;
# tsc needs no addon).
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY dataplane ./dataplane
COPY kube ./kube
COPY operator ./operator
COPY hack ./hack
COPY test ./test
RUN npx tsc -p tsconfig.json && chmod 0755 bin/portway.js

FROM scratch
COPY --from=build /rootfs /
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/cli ./dist/cli
COPY --from=build /src/dist/dataplane ./dist/dataplane
COPY --from=build /src/dist/kube ./dist/kube
COPY --from=build /src/dist/operator ./dist/operator
COPY crds ./crds
ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production
USER 1337:1337
ENTRYPOINT ["portway"]
CMD ["proxy"]
