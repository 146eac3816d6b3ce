// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * Imports point down only (DESIGN.md "Layers"); this is where that is enforced. A pattern
 * matches an import that climbs out (`../`) into a forbidden top-level folder of src/, so
 * `cli/commands/workspace/` (a CLI folder) is not mistaken for `src/workspace/`.
 */
const layer = (files, forbidden, why) => ({
  files,
  rules: {
    "no-restricted-imports": [
      "error",
      { patterns: [{ regex: `^(\\.\\./)+(${forbidden.join("|")})/`, message: why }] },
    ],
  },
});

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "agent/", ".scratch/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  layer(
    ["src/cli/**", "src/mcp/**"],
    ["manager", "workspace", "vmm", "vmstate", "shim", "guest", "env", "disk", "network"],
    "Surfaces call the Pyro facade and the contract only.",
  ),
  layer(
    ["src/sdk/**"],
    ["cli", "mcp", "vmm", "vmstate", "shim", "guest", "env", "disk", "network"],
    "The SDK facade calls the core (manager/, workspace/), not the runtime below it.",
  ),
  layer(
    ["src/contract/**"],
    [
      "cli",
      "mcp",
      "sdk",
      "manager",
      "workspace",
      "vmm",
      "shim",
      "guest",
      "env",
      "disk",
      "network",
      "util",
    ],
    "The contract is pure schemas.",
  ),
  layer(
    ["src/manager/**", "src/workspace/**", "src/secrets/**"],
    ["cli", "mcp", "sdk"],
    "The core never reaches up to a surface.",
  ),
  layer(
    [
      "src/vmm/**",
      "src/vmstate/**",
      "src/shim/**",
      "src/guest/**",
      "src/env/**",
      "src/disk/**",
      "src/network/**",
    ],
    ["cli", "mcp", "sdk", "manager", "workspace"],
    "The runtime layer never reaches up into the core or the surfaces.",
  ),
  layer(
    ["src/util/**"],
    ["cli", "mcp", "sdk", "manager", "workspace", "vmm", "shim", "guest", "env", "disk", "network"],
    "util/ is the bottom layer.",
  ),
);
