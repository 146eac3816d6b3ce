/** Environment operations of the core, as the SDK facade sees them. */
export {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../env/environments.js";
