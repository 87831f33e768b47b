# syntax=docker/dockerfile:1
# The Portway image: one image for both commands (`portway operator`, `portway proxy`).
#   docker build -t ghcr.io/portway/portway:0.1.0 .
# Stage 1 compiles the TypeScript with every dependency; stage 2 installs production
# dependencies only (npm ci --omit=dev, after the build) and keeps just the compiled program.
# Runs as the non-root user 1337 (the chart and the rendered gateway pods expect that UID).

ARG NODE_IMAGE=node:20.19-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# re2 is a native addon: its install script fetches a prebuilt binary or compiles one.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Scripts are skipped here (the "prepare" build needs the sources); re2 is built just after.
RUN npm ci --ignore-scripts && npm rebuild re2
COPY tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY dataplane ./dataplane
COPY kube ./kube
COPY operator ./operator
COPY hack ./hack
COPY test ./test
RUN npx tsc -p tsconfig.json
# Production dependencies only, now that the build no longer needs TypeScript.
RUN rm -rf node_modules && npm ci --omit=dev --ignore-scripts && npm rebuild re2 && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/cli ./dist/cli
COPY --from=build /src/dist/dataplane ./dist/dataplane
COPY --from=build /src/dist/kube ./dist/kube
COPY --from=build /src/dist/operator ./dist/operator
COPY crds ./crds
RUN ln -s /app/bin/portway.js /usr/local/bin/portway && chmod 0755 /app/bin/portway.js
USER 1337:1337
ENTRYPOINT ["portway"]
CMD ["proxy"]
