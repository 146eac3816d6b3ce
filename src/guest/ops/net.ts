import { z } from "zod";
import { defineOp } from "./op.js";
import { EmptyResultSchema } from "./system.js";

const ipv4 = z.string().regex(/^(\d{1,3})(\.\d{1,3}){3}$/);

/**
 * Brings the guest's eth0 up with a static IPv4 address and a default route, and writes
 * its /etc/resolv.conf (protocol/README.md `net_configure`). Sent by the shim right after
 * `hello` when the VM has a NIC; an empty `dns` leaves the guest without resolvers.
 */
export const netConfigure = defineOp(
  "net_configure",
  z.strictObject({
    address: ipv4,
    prefix_len: z.number().int().min(1).max(30),
    gateway: ipv4,
    dns: z.array(ipv4).max(3),
  }),
  EmptyResultSchema,
);
