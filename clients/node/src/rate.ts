/** A rate as the policy writes it: `count` hits per `periodMs`. */
export interface Rate {
  readonly count: number;
  readonly periodMs: number;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1, millisecond: 1, milliseconds: 1,
  s: 1_000, sec: 1_000, secs: 1_000, second: 1_000, seconds: 1_000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

/**
 * Parses `N/period` with the policy's grammar (`10/m`, `100/5m`,
 * `1000/hour`, `1/250ms`), or returns undefined. The service is the judge
 * of a rate (it answers INVALID_ARGUMENT naming the field); the client
 * parses only to decide locally while the service is down.
 */
export function parseRate(text: string): Rate | undefined {
  const match = /^\s*(\d+)\s*\/\s*(\d*)\s*([a-z]+)\s*$/.exec(text);
  if (!match) return undefined;
  const [, count, multiplier, unit] = match as unknown as [string, string, string, string];
  const unitMs = UNIT_MS[unit];
  const periodMs = (multiplier === "" ? 1 : Number(multiplier)) * (unitMs ?? 0);
  return periodMs > 0 ? { count: Number(count), periodMs } : undefined;
}
