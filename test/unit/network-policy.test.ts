import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { Pyro } from "../../src/index.js";
import { networkOf } from "../../src/manager/runtime.js";
import { tempDir } from "../helpers/temp.js";

const previousHome = process.env.PYRO_HOME;
const home = tempDir("pyro-net-policy-");
process.env.PYRO_HOME = home;
afterAll(() => {
  if (previousHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = previousHome;
});

const base = { state: "created" as const, environment: "debian:12", vcpu_count: 1, mem_mib: 256 };
const record = (fields: object) => ({
  ...base,
  ttl_seconds: 60,
  expires_at: "",
  acceleration: null,
  error: null,
  ...fields,
});

describe("which NIC a sandbox's record asks the shim for", () => {
  it("a VM's network: true is egress; false is no NIC at all", () => {
    expect(networkOf(record({ network: true }))).toEqual({ policy: "egress", allowed_domains: [] });
    expect(networkOf(record({ network: false }))).toBeNull();
  });

  it("a workspace names its policy and allowlist; off is no NIC", () => {
    expect(
      networkOf(record({ network_policy: "egress", allowed_domains: ["*.debian.org"] })),
    ).toEqual({ policy: "egress", allowed_domains: ["*.debian.org"] });
    expect(networkOf(record({ network_policy: "egress+published-ports" }))).toEqual({
      policy: "egress+published-ports",
      allowed_domains: [],
    });
    expect(networkOf(record({ network_policy: "off", allowed_domains: [] }))).toBeNull();
  });
});

describe("workspace create refuses bad network input before creating anything", () => {
  const refused = async (input: object) => {
    const error = (await new Pyro()
      .createWorkspace({ environment: "debian:12", ...input })
      .catch((e: unknown) => e)) as PyroError;
    expect(error).toBeInstanceOf(PyroError);
    expect(
      existsSync(join(home, "workspaces")) ? readdirSync(join(home, "workspaces")) : [],
    ).toEqual([]);
    return error;
  };

  it("an allowlist without a policy that has egress says which policy to add", async () => {
    const error = await refused({ allowed_domains: ["example.org"] });
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/--network-policy egress/);
  });

  it.each([["exa mple.org"], ["Example.org"], ["*.*.org"], ["http://x.org"], [""]])(
    "a domain pattern like %j is invalid_argument with the accepted form",
    async (pattern) => {
      const error = await refused({ network_policy: "egress", allowed_domains: [pattern] });
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/example\.org/);
    },
  );

  it("an unknown policy is invalid_argument", async () => {
    const error = await refused({ network_policy: "everything" });
    expect(error.code).toBe("invalid_argument");
  });
});
