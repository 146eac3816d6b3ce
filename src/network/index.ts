/**
 * The network guard of a VM with a NIC (net-design.md): the frame relay between the
 * guest's NIC and slirp, the allowlist proxy, and the refusal accounting they share.
 */
export { HostAddresses } from "./addresses.js";
export {
  DOMAIN_PATTERN,
  domainAllowed,
  MAX_ALLOWED_DOMAINS,
  parseDomainPatterns,
} from "./domains.js";
export { encodeNetFrame, MAX_NET_FRAME_BYTES, NetFrameReader } from "./frame-stream.js";
export {
  guestFrameVerdict,
  type FrameVerdict,
  type GuardPolicy,
  type RefusalReason,
} from "./guard.js";
export { aptProxyConfig, GUEST_NETWORK, proxyEnvironment } from "./guest-network.js";
export { startAllowlistProxy, type AllowlistProxy, type AllowlistProxyOptions } from "./proxy.js";
export { RefusalLog, type RefusalCounters } from "./refusals.js";
export {
  startGuestFrameRelay,
  type GuestFrameRelay,
  type GuestFrameRelayOptions,
} from "./relay.js";
