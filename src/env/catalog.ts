import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { PyroError } from "../contract/errors.js";
import { packageRoot } from "../util/paths.js";

/** An environment recipe: `environments/*.json`, built locally with mmdebstrap. */
export const RecipeSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9.-]*:[a-z0-9][a-z0-9.-]*$/),
  description: z.string(),
  suite: z.string(),
  variant: z.enum(["minbase", "apt", "required", "important", "standard"]),
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/)),
});
export type Recipe = z.infer<typeof RecipeSchema> & { digest: string };

/** Bumped when the way images are made changes, so old cache entries are rebuilt. */
export const ROOTFS_BUILDER_VERSION = 1;

let cached: Map<string, Recipe> | undefined;

export function recipes(): Map<string, Recipe> {
  if (cached) return cached;
  const dir = join(packageRoot, "environments");
  const map = new Map<string, Recipe>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()) {
    const text = readFileSync(join(dir, file), "utf8");
    const recipe = RecipeSchema.parse(JSON.parse(text));
    const digest = createHash("sha256")
      .update(`${ROOTFS_BUILDER_VERSION}\n${JSON.stringify(recipe)}`)
      .digest("hex")
      .slice(0, 16);
    map.set(recipe.name, { ...recipe, digest });
  }
  cached = new Map([...map].sort(([a], [b]) => (a < b ? -1 : 1)));
  return cached;
}

export function environmentNames(): string[] {
  return [...recipes().keys()];
}

export function findRecipe(name: string): Recipe {
  const recipe = recipes().get(name);
  if (!recipe) {
    throw new PyroError(
      "not_found",
      `unknown environment "${name}"; known environments: ${environmentNames().join(", ")}`,
      { details: { environment: name, known: environmentNames() } },
    );
  }
  return recipe;
}
