# The Moat gateway image. Built by the MSP's CI from this repository and referenced by
# `moat:gateway.image`; the stack's Azure hosting runs it with rspamd and clamd beside it.
#
#   docker build -t ghcr.io/<msp>/moat-gateway:<version> .
#
# Node.js 24 (LTS, upstream security fixes until 2028-04-30) in every stage: better-sqlite3 is
# compiled in the first for the node of the last (a test holds the stages to one image).

# --- build: install production dependencies (native modules compile here) -----------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 # The Pulumi SDKs are for `pulumi up`, not for the gateway (gateway/ never loads them at run time).
 && rm -rf node_modules/@pulumi

# --- compile: the gateway to JavaScript (npm run build -> dist/), run without a TypeScript loader
FROM node:24-bookworm-slim AS compile
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gateway ./gateway
COPY components ./components
RUN npm run build

# --- runtime: no compilers, no package manager caches, not root -----------------------------
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    MOAT_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY --from=compile /app/dist ./dist
COPY stacks ./stacks
RUN mkdir -p /data && chown node:node /data
# uid 1000, matching the Azure Files mount options (uid=1000,gid=1000).
USER node
# Unprivileged ports; the platform maps 25 -> 2525 and 80 -> 8080.
EXPOSE 2525 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# MOAT_CONFIG (the gatewayConfig document) comes from the environment: a Key Vault secret.
# Compiled: no TypeScript loader thread and no compiling at start (about 30 MB less memory).
# --max-semi-space-size=4: the young generation V8 sizes only at start; --v8-pool-size=1: one
# thread for V8's background work, which node starts only at start; --no-short-builtin-calls: no
# copy of V8's builtins per thread, about 2 MB each (gateway/v8-tuning.ts).
CMD ["node", "--max-semi-space-size=4", "--v8-pool-size=1", "--no-short-builtin-calls", "dist/gateway/cli.js", "serve"]
