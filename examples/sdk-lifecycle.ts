/**
 * The VM lifecycle step by step, for when you need the VM's status before the command:
 * createVm → startVm → statusVm → execVm. `execVm` runs one command and then deletes the
 * VM; for a plain one-shot command, `runInVm` (examples/sdk-run.ts) does all of this.
 *
 *   npx tsx examples/sdk-lifecycle.ts
 */
import { Pyro } from "pyro-mcp";

const pyro = new Pyro();

const created = await pyro.createVm({ environment: "debian:12-base", mem_mib: 512 });
const vm = { vm_id: created.vm_id };
console.log(`created ${vm.vm_id} (state ${created.state})`);
try {
  const started = await pyro.startVm(vm);
  console.log(`started with ${started.acceleration}, expires at ${started.expires_at}`);
  const status = await pyro.statusVm(vm);
  console.log(`status: ${status.state}`);
} catch (error) {
  // execVm is what deletes the VM, so a failure before it must clean up here.
  await pyro.deleteVm(vm).catch(() => {});
  throw error;
}
const result = await pyro.execVm({ ...vm, command: ["uname", "-r"] });
console.log(`exit_code ${result.exit_code}: ${result.stdout.trim()}`);
