import { describe, expect, it } from "vitest";
import { deferred, once } from "../../src/util/lazy.js";

class Counter {
  count = 0;
  async add(n: number): Promise<number> {
    this.count += n;
    return this.count;
  }
  sync(): number {
    return this.count;
  }
}

describe("loading on first use (util/lazy.ts)", () => {
  it("loads nothing until the first call, then once for all calls", async () => {
    let loads = 0;
    const counter = deferred(async () => {
      loads += 1;
      return new Counter();
    });
    expect(loads).toBe(0);
    const results = await Promise.all([counter.add(1), counter.add(2)]);
    expect(results.sort()).toEqual([1, 3]);
    expect(await counter.add(4)).toBe(7); // same instance: `this` is the loaded value
    expect(loads).toBe(1);
  });

  it("passes a method's rejection through", async () => {
    const failing = deferred(async () => ({
      boom: async () => {
        throw new Error("boom");
      },
    }));
    await expect(failing.boom()).rejects.toThrow("boom");
  });

  it("retries a load that failed instead of caching the failure", async () => {
    let attempts = 0;
    const load = once(async () => {
      attempts += 1;
      if (attempts === 1) throw new Error("first load fails");
      return "loaded";
    });
    await expect(load()).rejects.toThrow("first load fails");
    expect(await load()).toBe("loaded");
    expect(await load()).toBe("loaded");
    expect(attempts).toBe(2);
  });

  it("is not a thenable and offers only async methods", async () => {
    const counter = deferred(async () => new Counter());
    expect((counter as unknown as { then?: unknown }).then).toBeUndefined();
    expect(await Promise.resolve(counter)).toBe(counter);
    // @ts-expect-error a synchronous method cannot be deferred
    expect(typeof counter.sync).toBe("function");
    await expect(
      (counter as unknown as { missing: () => Promise<void> }).missing(),
    ).rejects.toThrow("missing is not a method");
  });
});
