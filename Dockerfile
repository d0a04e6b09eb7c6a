# syntax=docker/dockerfile:1
# One image for every uims server; the first argument picks the component:
#   docker run uims broker | gateway-im | gateway-email | gateway-sms | processor | cli keys
# Build: make images (or docker build -t uims:0.1.0 .)

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: compile TypeScript (sources only; .dockerignore leaves tests out) ---------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY gen ./gen
COPY common ./common
COPY broker ./broker
COPY gateways ./gateways
COPY processor ./processor
COPY cli ./cli
RUN npx tsc -p tsconfig.json

# --- deps: production dependencies only --------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="uims" \
      org.opencontainers.image.description="Unified instant messaging mesh: broker, gateways and processor" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist ./dist
# Server reflection and the health service load the .proto files at run time.
COPY proto/uims ./proto/uims
COPY --chmod=0555 bin/uims-server ./bin/uims-server
# Any uid works with a read-only root file system: nothing here is written at run time.
USER 10001:10001
EXPOSE 50051 50061 2525
# Exec form, and the script execs node: node is PID 1 and gets SIGTERM for a graceful drain.
ENTRYPOINT ["/app/bin/uims-server"]
