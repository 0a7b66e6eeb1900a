# syntax=docker/dockerfile:1
# One image, one CLI: `feedcrawl operator` (the Deployment) and `feedcrawl run`
# (the runner Job, `command: ["feedcrawl"], args: ["run"]`). The build stage
# compiles the TypeScript sources to JavaScript (tsconfig.build.json); the
# image holds that JavaScript and the production dependencies only. Running
# JavaScript rather than letting Node strip types at load time saves ~30 MB
# of RSS in every operator and runner process (docs/design.md).
#
#   docker build -t feedcrawl:dev .
#
# PID 1 is node itself, with no init: `feedcrawl operator` and `feedcrawl run`
# install their own SIGTERM/SIGINT handlers (graceful shutdown: the runner
# closes, uploads and reports its open batches), and the process spawns no
# children, so there are no zombies to reap. An init such as tini in the
# ENTRYPOINT would be skipped anyway for runner pods, whose `command:` replaces
# the ENTRYPOINT. See docs/deploy.md.

ARG NODE_IMAGE=node:24-slim

# ---- dependencies: production only, from the lockfile ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency needs an install script (the `node`
# devDependency, which does, is omitted with the other dev dependencies).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- the compiler: every dependency, TypeScript among the dev ones ----
FROM ${NODE_IMAGE} AS tools
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- build: the product folders to dist/ ----
FROM tools AS build
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY crds ./crds
COPY lib ./lib
COPY net ./net
COPY kube ./kube
COPY spec ./spec
COPY operator ./operator
COPY runner ./runner
RUN node_modules/.bin/tsc -p tsconfig.build.json

# ---- runtime ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# uid/gid 65532: the conventional "nonroot" user; the chart and the runner pods
# run as it with a read-only root filesystem (scratch space: an emptyDir at /tmp).
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./
# `feedcrawl` on PATH: bin/feedcrawl.js starts with `#!/usr/bin/env node`.
RUN chmod 0755 /app/bin/feedcrawl.js \
 && ln -s /app/bin/feedcrawl.js /usr/local/bin/feedcrawl
USER 65532:65532
ENTRYPOINT ["feedcrawl"]
CMD ["--help"]
