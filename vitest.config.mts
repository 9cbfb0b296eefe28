import { defineConfig } from "vitest/config";

// forks: the Pulumi runtime keeps process-wide state (mocks, config), so each test file
// gets its own process.
export default defineConfig({
  test: {
    pool: "forks",
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/global.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
