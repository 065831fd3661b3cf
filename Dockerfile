# syntax=docker/dockerfile:1
# scm-ha node image. The project targets Node >= 20.19, but the image runs the CURRENT Node LTS
# (24): issue 6 says "slim Node 20 base", the project's README says the image uses the current LTS,
# and the README wins. Both are tested by the test suite.

# ---- build: compile TypeScript with the dev dependencies ----
FROM node:24-bookworm-slim AS build
WORKDIR /opt/scm
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY proto ./proto
RUN npm run build

# ---- runtime: production dependencies, compiled JS, proto files and the CLI only ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /opt/scm
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /opt/scm/dist ./dist
COPY proto ./proto
COPY bin ./bin
# `scm` on PATH for the entrypoint; a non-root user owning /data. The two data directories are
# created here so named volumes mounted on them start out owned by that user.
RUN chmod 0755 bin/scm.js \
 && ln -s /opt/scm/bin/scm.js /usr/local/bin/scm \
 && groupadd --system --gid 1001 scm \
 && useradd --system --uid 1001 --gid scm --home-dir /data --no-create-home --shell /usr/sbin/nologin scm \
 && mkdir -p /data/metadata /data/ratis \
 && chown -R scm:scm /data
USER scm
VOLUME /data
# client gRPC, HTTP (metrics, health), Ratis, InterSCM gRPC: Ozone's default SCM ports
EXPOSE 9860 9876 9894 9895
# The slim image has no curl; Node's fetch does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9876/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["scm"]
CMD ["start"]
