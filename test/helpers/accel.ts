import { execFileSync } from "node:child_process";
import { CLI_ENTRY } from "./cli.js";

let expected: "kvm" | "tcg" | undefined;

/**
 * The acceleration real VMs must get on this host. Accepting "kvm or tcg" would let a KVM
 * regression that quietly falls back to TCG pass, so the expectation comes from outside
 * the run: `PYRO_EXPECT_ACCEL`, which scripts/test.sh sets from `pyro doctor --json`'s
 * decision before any VM boots (and which a CI runner known to have KVM can pin itself).
 * Outside CI, without it, doctor is asked here the same way; under CI=true its absence
 * is an error, so a CI that forgot it does not silently test nothing.
 */
export function expectedAcceleration(): "kvm" | "tcg" {
  if (expected) return expected;
  const given = process.env.PYRO_EXPECT_ACCEL?.trim();
  if (given) {
    if (given !== "kvm" && given !== "tcg")
      throw new Error(`PYRO_EXPECT_ACCEL must be "kvm" or "tcg", not "${given}"`);
    return (expected = given);
  }
  if (process.env.CI === "true")
    throw new Error("CI=true but PYRO_EXPECT_ACCEL is unset: scripts/test.sh sets it");
  return (expected = doctorDecision());
}

function doctorDecision(): "kvm" | "tcg" {
  let stdout: string;
  try {
    stdout = execFileSync(process.execPath, [CLI_ENTRY, "doctor", "--json"], {
      encoding: "utf8",
    });
  } catch (error) {
    // doctor exits 1 when a check fails; its JSON report is still on stdout.
    stdout = String((error as { stdout?: string }).stdout ?? "");
  }
  const mode = (JSON.parse(stdout) as { acceleration: { mode: string } }).acceleration.mode;
  if (mode !== "kvm" && mode !== "tcg") throw new Error(`pyro doctor says acceleration ${mode}`);
  return mode;
}
