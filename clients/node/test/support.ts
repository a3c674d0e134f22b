/**
 * The real `ratelimitd` binary as a process (RATELIMITD_BIN, default
 * `<repo>/target/debug/ratelimitd`), and small HTTP helpers. No fakes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const BINARY =
  process.env.RATELIMITD_BIN ?? fileURLToPath(new URL("../../../../target/debug/ratelimitd", import.meta.url));

/** A policy whose `web` domain accepts declared limits of a second and up. */
export const POLICY = `
settings:
  trusted_proxies: [127.0.0.1/32]
declared:
  domains: [web]
  min_period: 1s
`;

export class Service {
  readonly target: string;
  readonly httpAddr: string;
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess, target: string, httpAddr: string) {
    this.#child = child;
    this.target = target;
    this.httpAddr = httpAddr;
  }

  /** `ratelimitd serve` on free loopback ports with `policy` (and `args`), once it listens. */
  static async start(policy: string = POLICY, args: readonly string[] = []): Promise<Service> {
    const file = join(mkdtempSync(join(tmpdir(), "ratelimitd-node-")), "policy.yaml");
    writeFileSync(file, policy);
    const child = spawn(
      BINARY,
      ["serve", "--config", file, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json", ...args],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const seen: string[] = [];
    const exited = new Promise<never>((_, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`ratelimitd exited (${code}) before listening:\n${seen.join("\n")}`)));
    });
    const { stderr } = child;
    if (stderr === null) throw new Error("stderr is piped");
    const listening = (async () => {
      for await (const line of createInterface({ input: stderr })) {
        seen.push(line);
        const fields = JSON.parse(line) as { grpc_addr?: string; http_addr?: string };
        if (fields.grpc_addr !== undefined && fields.http_addr !== undefined) {
          return new Service(child, fields.grpc_addr, fields.http_addr);
        }
      }
      throw new Error(`ratelimitd closed stderr before listening:\n${seen.join("\n")}`);
    })();
    return Promise.race([listening, exited]);
  }

  /** CheckLimit calls the service has answered (its own metrics). */
  async calls(): Promise<number> {
    const text = await (await fetch(`http://${this.httpAddr}/metrics`)).text();
    const match = /^ratelimitd_grpc_request_duration_seconds_count\{method="CheckLimit"\} (\d+)$/m.exec(text);
    return match === null ? 0 : Number(match[1]);
  }

  /**
   * Freezes the process: connections stay open, calls get no answer.
   * Resolves once it is stopped (a signal is delivered asynchronously).
   */
  async pause(): Promise<void> {
    this.#child.kill("SIGSTOP");
    // The state is the field after the parenthesised command name.
    while (!/\)\s+T/.test(readFileSync(`/proc/${this.#child.pid}/stat`, "utf8"))) await sleep(1);
  }

  resume(): void {
    this.#child.kill("SIGCONT");
  }

  /** Kills the process and waits for it to be gone. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const gone = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.kill("SIGKILL");
    await gone;
  }
}

/** Serves `server` on every interface's loopback (`::`, dual stack); its base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "::", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request, optionally from another loopback address (`localAddress`). */
export function get(
  url: string,
  options: { readonly method?: string; readonly headers?: Record<string, string>; readonly localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "GET", headers: options.headers, localAddress: options.localAddress, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The rate-limit headers of a reply, by lower-case name. */
export function rateLimitHeaders(reply: Reply): Record<string, string | undefined> {
  const names = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", "ratelimit", "ratelimit-policy"];
  return Object.fromEntries(names.map((name) => [name, reply.headers[name] as string | undefined]));
}

/** Lower-cases header names, as Node's HTTP client reports them. */
export function lowerCased(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}
