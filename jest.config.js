// Transpile-only (swc) for speed; `make typecheck` runs tsc over the same files.
const { existsSync } = require("node:fs");
const { join } = require("node:path");

const sourceFolders = ["common", "broker", "gateways", "processor", "cli", "test"].filter((dir) => existsSync(join(__dirname, dir)));

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: sourceFolders.map((dir) => `<rootDir>/${dir}`),
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }],
  },
  globalSetup: "<rootDir>/test/support/global-setup.ts",
  globalTeardown: "<rootDir>/test/support/global-teardown.ts",
  testTimeout: 30000,
};
