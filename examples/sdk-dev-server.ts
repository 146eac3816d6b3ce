/**
 * A dev server in a workspace: start it as a service with HTTP readiness, talk to it from
 * inside the workspace, read its logs, stop it. The service keeps running between calls
 * (and CLI invocations) until it is stopped, the workspace stops or its idle TTL ends it.
 *
 *   npx tsx examples/sdk-dev-server.ts
 *
 * debian:12-build has python3; its `http.server` stands in for any dev server.
 */
import { Pyro } from "pyro-mcp";

const pyro = new Pyro();

const { workspace_id } = await pyro.createWorkspace({ environment: "debian:12-build" });
try {
  await pyro.writeWorkspaceFile({ workspace_id, path: "site/index.html", text: "<h1>hi</h1>\n" });
  const web = await pyro.startService({
    workspace_id,
    service_name: "web",
    command: ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
    cwd: "site",
    readiness: { type: "http", url: "http://127.0.0.1:8000/" },
    ready_timeout_seconds: 30,
  });
  console.log(`web is ${web.state} (pid ${web.pid}), ready at ${web.ready_at}`);

  const page = await pyro.execWorkspace({
    workspace_id,
    command: [
      "bash",
      "-c",
      "exec 3<>/dev/tcp/127.0.0.1/8000; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ],
  });
  console.log(page.stdout.split("\r\n\r\n")[1]?.trim());

  const logs = await pyro.logsService({ workspace_id, service_name: "web", tail_lines: 5 });
  console.log(`server log:\n${logs.stderr.trimEnd()}`);

  const stopped = await pyro.stopService({ workspace_id, service_name: "web" });
  console.log(`web is ${stopped.state} (${stopped.stop_reason}, signal ${stopped.signal})`);
} finally {
  await pyro.deleteWorkspace({ workspace_id });
}
