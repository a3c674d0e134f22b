import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import createApp, { type ErrorRequestHandler } from "express";
import { RatelimitdClient, type RatelimitdClientOptions } from "@ratelimitd/client";
import { express as ratelimitd, type ExpressOptions } from "@ratelimitd/client/express";
import { get, listen, lowerCased, rateLimitHeaders, Service } from "./support.js";

const servers: Server[] = [];
const clients: RatelimitdClient[] = [];

/** An app with the middleware as `options` say; `/` answers the decision as JSON. */
async function app(options: Omit<ExpressOptions, "client">, client: Partial<RatelimitdClientOptions> & { target: string }) {
  const ratelimitdClient = new RatelimitdClient({ domain: "web", timeoutMs: 2_000, ...client });
  clients.push(ratelimitdClient);
  const application = createApp();
  application.use(ratelimitd({ client: ratelimitdClient, ...options }));
  application.get(["/", "/health"], (req, res) => {
    res.json(req.rateLimit ?? null);
  });
  const onError: ErrorRequestHandler = (error: Error, _req, res, _next) => {
    res.status(500).send(error.name);
  };
  application.use(onError);
  const server = createServer(application);
  servers.push(server);
  return listen(server);
}

after(() => {
  servers.forEach((server) => server.close());
  clients.forEach((client) => client.close());
});

describe("Express middleware against the service", () => {
  let service: Service;

  before(async () => {
    service = await Service.start();
  });

  after(() => service.kill());

  test("allows, then answers 429 with Retry-After; the decision's headers on every response; one call each", async () => {
    const url = await app({ limits: [{ name: "pages", key: "ip", rate: "2/m", algorithm: "sliding_log" }] }, service);
    const calls = await service.calls();
    const first = await get(url);
    assert.equal(first.status, 200);
    const decision = JSON.parse(first.body) as { source: string; headers: Record<string, string>; remaining: number };
    assert.equal(decision.source, "service");
    assert.equal(decision.remaining, 1);
    assert.deepEqual(rateLimitHeaders(first), { "retry-after": undefined, ...lowerCased(decision.headers) });
    assert.equal(first.headers["x-ratelimit-limit"], "2");
    assert.equal(first.headers["x-ratelimit-remaining"], "1");
    assert.equal(first.headers["ratelimit-policy"], '"pages.default";q=2;w=60');
    const second = await get(url);
    assert.equal(second.status, 200);
    assert.equal(second.headers["x-ratelimit-remaining"], "0");
    const denied = await get(url);
    assert.equal(denied.status, 429);
    assert.equal(denied.body, "Too Many Requests\n");
    assert.equal(denied.headers["x-ratelimit-limit"], "2");
    assert.equal(denied.headers["x-ratelimit-remaining"], "0");
    assert.equal(denied.headers["retry-after"], "60");
    assert.match(denied.headers["ratelimit"] as string, /^"pages.default";r=0;t=\d+$/);
    assert.equal(await service.calls(), calls + 3);
  });

  test("callable key and rate", async () => {
    const url = await app(
      {
        limits: [
          {
            name: "tenants",
            key: (req) => req.get("x-tenant"),
            rate: (req) => (req.get("x-tenant") === "gold" ? "3/m" : "1/m"),
            algorithm: "sliding_log",
          },
        ],
      },
      service,
    );
    const statuses = async (tenant: string | undefined, n: number) => {
      const seen: number[] = [];
      for (let i = 0; i < n; i += 1) seen.push((await get(url, { headers: tenant === undefined ? {} : { "x-tenant": tenant } })).status);
      return seen;
    };
    assert.deepEqual(await statuses("gold", 4), [200, 200, 200, 429]);
    assert.deepEqual(await statuses("silver", 2), [200, 429]);
    // Without a tenant the limit does not apply: no limit, no headers.
    const anonymous = await get(url);
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.headers["x-ratelimit-limit"], undefined);
    assert.deepEqual(await statuses(undefined, 3), [200, 200, 200]);
  });

  test("the request option adds the user; skip makes no call", async () => {
    const url = await app(
      {
        limits: [{ name: "per-user", key: "user", rate: "1/m", algorithm: "sliding_log" }],
        request: (req) => ({ user: req.get("x-user") ?? "" }),
        skip: (req) => req.path === "/health",
      },
      service,
    );
    const as = (user: string) => get(url, { headers: { "x-user": user } });
    assert.equal((await as("ann")).status, 200);
    assert.equal((await as("ann")).status, 429);
    assert.equal((await as("bob")).status, 200);
    const calls = await service.calls();
    const health = await get(`${url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body, "null");
    assert.equal(health.headers["x-ratelimit-limit"], undefined);
    assert.equal(await service.calls(), calls);
  });

  test("IPv4 clients of a dual-stack server (::ffff:) are counted per client", async () => {
    const url = await app({ limits: [{ name: "per-ip", key: "ip", rate: "1/m", algorithm: "sliding_log" }] }, service);
    assert.equal((await get(url, { localAddress: "127.0.0.2" })).status, 200);
    assert.equal((await get(url, { localAddress: "127.0.0.2" })).status, 429);
    assert.equal((await get(url, { localAddress: "127.0.0.3" })).status, 200);
  });

  test("X-Forwarded-For is resolved by the service: never the left-most hop", async () => {
    const url = await app({ limits: [{ name: "xff", key: "ip", rate: "1/m", algorithm: "sliding_log" }] }, service);
    // 127.0.0.1 is a trusted proxy in the test policy; 127.0.0.4 is not.
    const via = (localAddress: string, xff: string) => get(url, { localAddress, headers: { "x-forwarded-for": xff } });
    assert.equal((await via("127.0.0.1", "1.1.1.1, 203.0.113.7")).status, 200);
    assert.equal((await via("127.0.0.1", "2.2.2.2, 203.0.113.7")).status, 429);
    assert.equal((await via("127.0.0.1", "203.0.113.8")).status, 200);
    assert.equal((await via("127.0.0.4", "203.0.113.9")).status, 200);
    assert.equal((await via("127.0.0.4", "203.0.113.10")).status, 429);
  });

  test("the path sent is the request's, below a mount point too", async () => {
    const client = new RatelimitdClient({ target: service.target, domain: "web", timeoutMs: 2_000 });
    clients.push(client);
    const application = createApp();
    const perPath = ratelimitd({ client, limits: [{ name: "per-path", key: "path", rate: "1/m", algorithm: "sliding_log" }] });
    application.use("/api", perPath);
    application.use("/b", perPath);
    application.get("/{*path}", (_req, res) => {
      res.send("ok");
    });
    const server = createServer(application);
    servers.push(server);
    const url = await listen(server);
    assert.equal((await get(`${url}/api/a?q=1`)).status, 200);
    assert.equal((await get(`${url}/api/a?q=2`)).status, 429, "the query is not part of the path");
    assert.equal((await get(`${url}/b/a`)).status, 200, "/b/a is not /api/a");
  });

  test("a custom handler answers denials; the service refusing a request goes to next(error)", async () => {
    const url = await app(
      {
        limits: [{ name: "custom", rate: "0/m" }],
        handler: (_req, res, _next, decision) => {
          res.status(418).json({ retryAfterMs: decision.retryAfterMs });
        },
      },
      service,
    );
    const denied = await get(url);
    assert.equal(denied.status, 418);
    assert.equal(denied.headers["x-ratelimit-limit"], "0");
    assert.ok((JSON.parse(denied.body) as { retryAfterMs: number }).retryAfterMs > 0);
    const broken = await app({ limits: [{ name: "broken", rate: "1/fortnight" }] }, service);
    const refused = await get(broken);
    assert.equal(refused.status, 500);
    assert.equal(refused.body, "RatelimitdRequestError");
  });
});

describe("Express middleware when the service is gone", () => {
  let target: string;

  before(async () => {
    const service = await Service.start();
    target = service.target;
    await service.kill();
  });

  test("closed answers 503, never 429", async () => {
    const url = await app({ limits: [{ name: "a", rate: "1/m" }] }, { target, onError: "closed" });
    const reply = await get(url);
    assert.equal(reply.status, 503);
    assert.equal(reply.body, "Service Unavailable\n");
    assert.deepEqual(rateLimitHeaders(reply), Object.fromEntries(Object.keys(rateLimitHeaders(reply)).map((name) => [name, undefined])));
  });

  test("open lets requests through, without rate-limit headers", async () => {
    const url = await app({ limits: [{ name: "a", rate: "0/m" }] }, { target });
    const reply = await get(url);
    assert.equal(reply.status, 200);
    const decision = JSON.parse(reply.body) as { source: string; degraded: boolean };
    assert.equal(decision.source, "fallback");
    assert.equal(decision.degraded, true);
    assert.equal(reply.headers["x-ratelimit-limit"], undefined);
  });

  test("local counts in process and answers 429 with a Retry-After", async () => {
    const url = await app({ limits: [{ name: "a", key: "ip", rate: "2/h" }] }, { target, onError: "local" });
    assert.equal((await get(url)).status, 200);
    assert.equal((await get(url)).status, 200);
    const denied = await get(url);
    assert.equal(denied.status, 429);
    const retryAfter = Number(denied.headers["retry-after"]);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    assert.equal(denied.headers["x-ratelimit-limit"], undefined);
  });
});
