/**
 * The MCP server's tool profiles (CONTRACT.md). Apart from `operations.ts`, which says
 * which tools each profile has, so the SDK entry can export the names without loading
 * every operation's schema.
 */
export const MCP_PROFILES = ["vm-run", "workspace-core", "workspace-full"] as const;
export type McpProfile = (typeof MCP_PROFILES)[number];
export const DEFAULT_MCP_PROFILE: McpProfile = "workspace-core";
