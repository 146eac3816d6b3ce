#!/usr/bin/env bash
# The whole test suite, from a machine that has nothing: installs what it needs, builds
# the kernel, agent and test environments (cached after the first run), then runs the
# four tiers (unit, agent, guest, surface) plus lint, typecheck and the agent's C tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "[test] phase=lint" >&2
npm run --silent typecheck
npm run --silent lint
echo "[test] phase=agent-c-tests" >&2
make -s -C agent test test-host
echo "[test] phase=environments" >&2
pyro env pull debian:12-base
pyro env pull debian:12
# Tiers one after another: guest and surface tests boot VMs, and a 2-core machine is
# better used by one tier's VMs at a time.
rm -rf .test-results
for tier in unit agent guest surface; do
  echo "[test] phase=vitest tier=$tier" >&2
  npx vitest run --project "$tier" --reporter=default --reporter=json --outputFile=".test-results/$tier.json"
done
# One plain closing line over all tiers.
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  for (const f of fs.readdirSync(".test-results")) {
    const r = JSON.parse(fs.readFileSync(".test-results/" + f, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
  }
  console.log(`tests: ${passed} passed, ${failed} failed`);
'

