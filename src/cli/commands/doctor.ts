import type { Command } from "commander";
import type { Pyro } from "../../sdk/pyro.js";
import { escapeLine } from "../escape.js";
import { EXIT, printJson, reportError } from "../output.js";

/** `pyro doctor`: one PASS/FAIL line per host requirement, each FAIL with its fix. */
export function registerDoctor(program: Command, pyro: () => Pyro): void {
  program
    .command("doctor")
    .description("Check this host: KVM and acceleration, QEMU, build tools, cached artifacts.")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      try {
        const report = await pyro().doctor();
        if (options.json) printJson(report);
        else {
          for (const c of report.checks) {
            const mark = c.status === "pass" ? "PASS" : c.required ? "FAIL" : "FAIL (optional)";
            process.stdout.write(
              `${mark.padEnd(15)} ${c.name.padEnd(15)} ${escapeLine(c.detail)}\n`,
            );
            if (c.fix)
              process.stdout.write(`${"".padEnd(15)} ${"".padEnd(15)} fix: ${escapeLine(c.fix)}\n`);
          }
          process.stdout.write(
            `acceleration: ${report.acceleration.mode} (${escapeLine(report.acceleration.reason)})\n`,
          );
        }
        process.exitCode = report.ok ? EXIT.ok : EXIT.failure;
      } catch (error) {
        process.exitCode = reportError(error, { json: options.json === true });
      }
    });
}
