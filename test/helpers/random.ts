/** A small deterministic PRNG (mulberry32), so a failing property case can be replayed by seed. */
export function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * How many cases a property test runs: its own default in the test tiers, more under
 * `npm run fuzz` (which sets PYRO_PROPERTY_RUNS and a fresh PYRO_PROPERTY_SEED per round).
 */
export function propertyRuns(defaultRuns: number): number {
  const runs = Number(process.env.PYRO_PROPERTY_RUNS);
  return Number.isInteger(runs) && runs > 0 ? runs : defaultRuns;
}

/** The seed a property test starts from; a failure message should print it for replay. */
export function propertySeed(defaultSeed: number): number {
  const seed = Number(process.env.PYRO_PROPERTY_SEED);
  return Number.isInteger(seed) ? seed : defaultSeed;
}
