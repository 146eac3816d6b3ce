import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The tiers of DESIGN.md "Testing tiers", plus `host`: the shim and managers around the
// real agent run as a host process (PYRO_VMM=host), no VM, so each test takes seconds.
// Guest and surface tests boot real VMs, so they run one file at a time on a 2-core
// machine and get generous timeouts.
export default defineConfig({
  test: {
    projects: [
      {
        // The examples import "pyro-mcp" as users do; in this repo that is src/ (tsconfig paths).
        resolve: { alias: { "pyro-mcp": fileURLToPath(new URL("src/index.ts", import.meta.url)) } },
        test: { name: "unit", include: ["test/unit/**/*.test.ts"] },
      },
      { test: { name: "agent", include: ["test/agent/**/*.test.ts"], testTimeout: 30_000 } },
      {
        test: {
          name: "host",
          include: ["test/host/**/*.test.ts"],
          env: { PYRO_VMM: "host" },
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "guest",
          include: ["test/guest/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "surface",
          include: ["test/surface/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
