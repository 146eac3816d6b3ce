#!/usr/bin/env bash
# The whole test suite, from a machine that has nothing: installs what it needs, builds
# the kernel, agent and test environments (cached after the first run), then runs the
# five tiers (unit, host, agent, guest, surface) plus lint, typecheck and the agent's C tests.
#
# It always ends with one plain line, `tests: N passed, N failed, N skipped`, whatever
# happened: a step that fails before the tiers stops the run but still prints it (with
# where it stopped), and every tier runs even when an earlier one failed, so a red run
# says how red. The exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS=.test-results
PHASE=start
FAILED_TIERS=()
TIERS_RUN=""
rm -rf "$RESULTS"

phase() {
  PHASE=$1
  echo "[test] phase=$*" >&2
}

# One closing line over all tiers, from the JSON each tier wrote. A tier that wrote none
# (vitest itself crashed) is named, and the run counts as failed.
summary() {
  local status=$1
  trap - EXIT
  set +e
  if [ "$status" -ne 0 ] && [ "$PHASE" != done ]; then
    echo "[test] phase=stopped at=$PHASE status=$status" >&2
  fi
  if [ "${#FAILED_TIERS[@]}" -gt 0 ]; then
    echo "[test] phase=failed tiers=${FAILED_TIERS[*]}" >&2
    [ "$status" -eq 0 ] && status=1
  fi
  node -e '
    const fs = require("fs");
    const [dir, tiers] = [process.argv[1], process.argv[2].split(" ").filter(Boolean)];
    let passed = 0, failed = 0, skipped = 0;
    const missing = [];
    for (const tier of tiers) {
      const file = `${dir}/${tier}.json`;
      if (!fs.existsSync(file)) { missing.push(tier); continue; }
      const r = JSON.parse(fs.readFileSync(file, "utf8"));
      passed += r.numPassedTests;
      failed += r.numFailedTests;
      skipped += r.numPendingTests + r.numTodoTests;
    }
    if (missing.length) {
      console.error(`[test] phase=summary no-results=${missing.join(",")}`);
      process.exitCode = 1;
    }
    console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  ' "$RESULTS" "${TIERS_RUN:-}" || status=1
  exit "$status"
}
trap 'summary $?' EXIT

phase setup
bash scripts/setup.sh
PHASE=acceleration
# What real VMs must get on this host, decided before any VM boots: guest tests assert
# it, so a KVM regression that falls back to TCG fails instead of passing slowly. A CI
# runner known to have KVM can pin PYRO_EXPECT_ACCEL=kvm itself.
if [ -z "${PYRO_EXPECT_ACCEL:-}" ]; then
  PYRO_EXPECT_ACCEL=$( (pyro doctor --json || true) |
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).acceleration.mode)')
fi
export PYRO_EXPECT_ACCEL
echo "[test] phase=acceleration expect=$PYRO_EXPECT_ACCEL" >&2
phase lint
npm run --silent typecheck
npm run --silent lint
phase agent-c-tests
make -s -C agent test test-host
phase environments
pyro env pull debian:12-base
pyro env pull debian:12
# Services and shells tests need python3 (an HTTP server, a REPL).
pyro env pull debian:12-build
# Tiers one after another: guest and surface tests boot VMs, and a 2-core machine is
# better used by one tier's VMs at a time. `host` (the shim and managers around the agent
# as a host process, PYRO_VMM=host in its vitest project) runs right after unit: it finds
# a broken lifetime or content rule in seconds, before any VM boots.
for tier in unit host agent guest surface; do
  phase vitest "tier=$tier"
  TIERS_RUN="$TIERS_RUN $tier"
  npx vitest run --project "$tier" --reporter=default --reporter=json \
    --outputFile="$RESULTS/$tier.json" || FAILED_TIERS+=("$tier")
done
PHASE=done
