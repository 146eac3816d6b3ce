export { Pyro, type PyroOptions } from "./sdk/pyro.js";
export { PyroError, isPyroError, ERROR_CODES, type ErrorCode } from "./contract/errors.js";
export type { RunParamsInput as RunOptions, RunResultValue as RunResult } from "./contract/vm.js";
export type { ProgressEvent, ProgressSink } from "./util/progress.js";
