/**
 * One command in a fresh microVM: the smallest useful pyro program.
 *
 *   npx tsx examples/sdk-run.ts
 *
 * The first run on a host builds the guest kernel and the environment (minutes, shown as
 * progress on stderr); later runs boot in about a second under TCG.
 */
import { Pyro, isPyroError } from "pyro-mcp";

const pyro = new Pyro({
  progress: (event) => process.stderr.write(`[${event.scope}] phase=${event.phase}\n`),
});

try {
  // The output streams as the command prints it; `result.stdout` has it all again at the end.
  const result = await pyro.runInVm(
    { environment: "debian:12", command: ["sh", "-c", "git --version; sleep 1; uname -r"] },
    { onStdout: (chunk) => process.stdout.write(chunk) },
  );
  console.log(`exit_code ${result.exit_code} in ${result.duration_ms} ms (${result.acceleration})`);
} catch (error) {
  // Failures of pyro itself (not of the command) carry a stable code and a fix.
  if (!isPyroError(error)) throw error;
  console.error(`[${error.code}] ${error.message}`);
  process.exitCode = 1;
}
