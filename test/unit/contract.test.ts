import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { OPERATIONS } from "../../src/contract/operations.js";
import { Pyro } from "../../src/sdk/pyro.js";
import { PUBLIC_CONTRACT_PATH, renderPublicContract } from "../../scripts/gen-public-contract.js";
import {
  CONTRACT_NAMES_FIXTURE,
  SHARED_CONTRACT,
  contractNames,
  parseContractNames,
  sharedContractExists,
} from "../helpers/contract-names.js";

const names = contractNames();

describe("the contract (src/contract/operations.ts)", () => {
  it("has a Pyro facade method for every operation", () => {
    const missing = OPERATIONS.map((op) => op.sdkMethod).filter(
      (method) =>
        typeof (Pyro.prototype as unknown as Record<string, unknown>)[method] !== "function",
    );
    expect(missing).toEqual([]);
  });

  it("spells every SDK method and MCP tool exactly as CONTRACT.md does", () => {
    const ours = OPERATIONS.map((op) => ({ sdkMethod: op.sdkMethod, mcpTool: op.mcpTool }));
    const theirs = ours.map(({ sdkMethod }) => names.find((n) => n.sdkMethod === sdkMethod));
    expect(theirs).toEqual(ours);
  });

  it("gives every operation object params and results, as MCP tools need", () => {
    for (const op of OPERATIONS) {
      expect(op.params, op.sdkMethod).toBeInstanceOf(z.ZodObject);
      expect(op.result, op.sdkMethod).toBeInstanceOf(z.ZodObject);
      const fields = Object.keys((op.params as z.ZodObject).shape);
      expect(fields, `${op.sdkMethod} coreOmits`).toEqual(
        expect.arrayContaining([...(op.coreOmits ?? [])]),
      );
      expect(op.description, op.sdkMethod).toMatch(/^[A-Z].*\.$/);
    }
  });

  it("keeps docs/public-contract.md in step (run npx tsx scripts/gen-public-contract.ts)", async () => {
    const current = readFileSync(PUBLIC_CONTRACT_PATH, "utf8");
    const fresh = await renderPublicContract();
    expect(
      current === fresh,
      "docs/public-contract.md is stale: run npx tsx scripts/gen-public-contract.ts",
    ).toBe(true);
  });

  // The shared folder sits beside the checkout in CI and in the team's work tree; a bare
  // clone has only the copy, which the test above already holds the code to.
  it("keeps the copied names table equal to the shared CONTRACT.md's", () => {
    const source = sharedContractExists() ? SHARED_CONTRACT : CONTRACT_NAMES_FIXTURE;
    expect(names).toEqual(parseContractNames(readFileSync(source, "utf8")));
    expect(names.length).toBeGreaterThan(40);
  });
});

describe("the CLI follows the contract", () => {
  it("has a command for every operation that names one, with the contract's description", async () => {
    const { buildProgram } = await import("../../src/cli/program.js");
    const program = buildProgram();
    for (const op of OPERATIONS) {
      if (!op.cliCommand) continue;
      let command = program;
      for (const word of op.cliCommand.split(" ")) {
        const next = command.commands.find((c) => c.name() === word);
        expect(next, `pyro ${op.cliCommand}`).toBeDefined();
        command = next!;
      }
      expect(command.description(), `pyro ${op.cliCommand}`).toBe(op.description);
    }
  });

  it("generates run's flags, defaults included, from the contract", async () => {
    const { buildProgram } = await import("../../src/cli/program.js");
    const run = buildProgram().commands.find((c) => c.name() === "run")!;
    const flags = Object.fromEntries(run.options.map((o) => [o.long, o.defaultValue]));
    expect(flags).toMatchObject({
      "--vcpu-count": 1,
      "--mem-mib": 1024,
      "--timeout-seconds": 30,
      "--ttl-seconds": 600,
    });
    expect(Object.keys(flags)).toEqual(
      expect.arrayContaining(["--network", "--allow-host-compat", "--json"]),
    );
  });
});
