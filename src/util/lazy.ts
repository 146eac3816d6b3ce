/**
 * Loading on first use. Importing zod, the contract and the managers costs hundreds of
 * milliseconds (issue 10, "Start-up cost"); `import("pyro-mcp")`, `new Pyro()` and
 * `pyro --version` need none of it, so those modules load when a call first needs them.
 */

/** A function that runs `load` once and then returns its result; a failed load is retried. */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load();
    loading.catch(() => (loading = undefined));
    return loading;
  };
}

/** The async methods of T: the only members a {@link deferred} object can stand in for. */
export type Deferred<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => Promise<unknown> ? K : never]: T[K];
};

/**
 * An object whose async methods call the same method on the value `load` resolves to, so
 * `manager.run(params)` reads the same whether the manager is loaded yet or not. Only
 * async methods exist on it (the type says so), because a call must be able to wait.
 */
export function deferred<T extends object>(load: () => Promise<T>): Deferred<T> {
  const loadOnce = once(load);
  return new Proxy({} as Deferred<T>, {
    get(_target, key) {
      // Not a thenable (so `await` of it is not a call) and no symbol-keyed protocol.
      if (key === "then" || typeof key === "symbol") return undefined;
      return async (...args: unknown[]) => {
        const value = await loadOnce();
        const method = (value as Record<string, unknown>)[key];
        if (typeof method !== "function") throw new TypeError(`${key} is not a method`);
        return (method as (...a: unknown[]) => unknown).apply(value, args);
      };
    },
  });
}
