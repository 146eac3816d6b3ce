#!/usr/bin/env node
import { CommanderError } from "commander";
import { EXIT } from "./output.js";
import { buildProgram } from "./program.js";

async function main(): Promise<void> {
  const program = await buildProgram(process.argv);
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const isRun =
        process.argv[2] === "run" ||
        (process.argv[2] === "workspace" && process.argv[3] === "exec");
      const success = error.exitCode === 0;
      process.exitCode = success ? EXIT.ok : isRun ? EXIT.pyroFailedInRun : EXIT.usage;
      return;
    }
    throw error;
  }
}

await main();
