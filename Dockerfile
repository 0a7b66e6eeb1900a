# syntax=docker/dockerfile:1
# One image, one CLI: `feedcrawl operator` (the Deployment) and `feedcrawl run`
# (the runner Job, `command: ["feedcrawl"], args: ["run"]`). Node 24 runs the
# TypeScript sources directly (type stripping: the code is erasable-syntax-only
# TS), so there is no build step — only production dependencies are installed.
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
COPY bin ./bin
COPY crds ./crds
COPY lib ./lib
COPY net ./net
COPY kube ./kube
COPY spec ./spec
COPY operator ./operator
COPY runner ./runner
# `feedcrawl` on PATH: bin/feedcrawl.ts starts with `#!/usr/bin/env node`.
RUN chmod 0755 /app/bin/feedcrawl.ts \
 && ln -s /app/bin/feedcrawl.ts /usr/local/bin/feedcrawl
USER 65532:65532
ENTRYPOINT ["feedcrawl"]
CMD ["--help"]
