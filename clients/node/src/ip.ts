import { isIPv6 } from "node:net";

/**
 * An address as the service should count it: an IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.1`, what a dual-stack Node server reports for IPv4
 * clients) is the IPv4 address it maps; no address (a Unix socket's
 * `remoteAddress`) is `""`, unknown. Anything else is sent as it is, for
 * the service to accept or reject.
 */
export function normalizeIp(address: string | undefined): string {
  if (address === undefined) return "";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/**
 * The counting key of an address as the service builds it by default:
 * IPv4 per address, IPv6 per /64 (its first four groups).
 */
export function ipCountingKey(address: string): string {
  const ip = normalizeIp(address);
  if (!isIPv6(ip)) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("::");
  // A trailing dotted quad is the last two groups: never part of the /64.
  const groups = (part: string) =>
    part === "" ? [] : part.split(":").flatMap((group) => (group.includes(".") ? ["0", "0"] : [group]));
  const left = groups(head);
  const right = groups(tail);
  const missing = Math.max(0, 8 - left.length - right.length);
  const full = [...left, ...Array<string>(missing).fill("0"), ...right];
  return `${full.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16)).join(":")}::/64`;
}
