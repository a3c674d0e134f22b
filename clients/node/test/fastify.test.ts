import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { RatelimitdClient } from "@ratelimitd/client";
import { fastify as ratelimitd, type FastifyOptions } from "@ratelimitd/client/fastify";
import { get, Service } from "./support.js";

describe("Fastify plugin against the service", () => {
  let service: Service;
  let client: RatelimitdClient;
  const apps: FastifyInstance[] = [];

  before(async () => {
    service = await Service.start();
    client = new RatelimitdClient({ target: service.target, domain: "web", timeoutMs: 2_000 });
  });

  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    client.close();
    await service.kill();
  });

  /** An app with `/global`, `/route` (its own limit) and `/off`; its base URL. */
  async function app(options: Omit<FastifyOptions, "client">) {
    const app = Fastify();
    apps.push(app);
    await app.register(ratelimitd, { client, ...options });
    const decision = (request: { rateLimit: unknown }) => ({ decision: request.rateLimit });
    app.get("/global", async (request) => decision(request));
    app.get(
      "/route",
      { config: { ratelimitd: { limits: [{ name: "route", key: "ip", rate: "1/m", algorithm: "sliding_log" }] } } },
      async (request) => decision(request),
    );
    app.get("/off", { config: { ratelimitd: false } }, async (request) => decision(request));
    await app.listen({ host: "::", port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === "object");
    return `http://127.0.0.1:${address.port}`;
  }

  test("per-route limits replace the plugin's; false turns checking off; one call per request", async () => {
    const url = await app({ limits: [{ name: "global", key: "ip", rate: "5/m", algorithm: "sliding_log" }] });
    const calls = await service.calls();
    const route = await get(`${url}/route`, { localAddress: "127.0.0.5" });
    assert.equal(route.status, 200);
    assert.equal(route.headers["x-ratelimit-limit"], "1");
    assert.equal(route.headers["ratelimit-policy"], '"route.default";q=1;w=60');
    const body = JSON.parse(route.body) as { decision: { source: string; remaining: number } };
    assert.equal(body.decision.source, "service");
    assert.equal(body.decision.remaining, 0);
    const denied = await get(`${url}/route`, { localAddress: "127.0.0.5" });
    assert.equal(denied.status, 429);
    assert.equal(denied.body, "Too Many Requests\n");
    assert.equal(denied.headers["retry-after"], "60");
    assert.equal(denied.headers["x-ratelimit-remaining"], "0");
    const global = await get(`${url}/global`, { localAddress: "127.0.0.5" });
    assert.equal(global.status, 200);
    assert.equal(global.headers["x-ratelimit-limit"], "5");
    assert.equal(global.headers["x-ratelimit-remaining"], "4");
    assert.equal(global.headers["ratelimit-policy"], '"global.default";q=5;w=60');
    assert.equal(await service.calls(), calls + 3);
    const off = await get(`${url}/off`, { localAddress: "127.0.0.5" });
    assert.equal(off.status, 200);
    assert.equal(off.body, JSON.stringify({ decision: null }));
    assert.equal(off.headers["x-ratelimit-limit"], undefined);
    assert.equal(await service.calls(), calls + 3);
  });

  test("IPv4 clients of a dual-stack server (::ffff:) are counted per client", async () => {
    const url = await app({});
    assert.equal((await get(`${url}/route`, { localAddress: "127.0.0.6" })).status, 200);
    assert.equal((await get(`${url}/route`, { localAddress: "127.0.0.6" })).status, 429);
    assert.equal((await get(`${url}/route`, { localAddress: "127.0.0.7" })).status, 200);
  });

  test("global: false checks only the routes that ask", async () => {
    const url = await app({ global: false, limits: [{ name: "never", rate: "0/m" }] });
    const calls = await service.calls();
    const global = await get(`${url}/global`);
    assert.equal(global.status, 200);
    assert.equal(global.body, JSON.stringify({ decision: null }));
    assert.equal(await service.calls(), calls);
    assert.equal((await get(`${url}/route`, { localAddress: "127.0.0.8" })).status, 200);
    assert.equal(await service.calls(), calls + 1);
  });

  test("closed answers 503 when the service is gone", async () => {
    const gone = await Service.start();
    const closed = new RatelimitdClient({ target: gone.target, domain: "web", onError: "closed" });
    await gone.kill();
    const app = Fastify();
    apps.push(app);
    await app.register(ratelimitd, { client: closed });
    app.get("/", async () => "ok");
    const reply = await app.inject({ method: "GET", url: "/" });
    closed.close();
    assert.equal(reply.statusCode, 503);
    assert.equal(reply.body, "Service Unavailable\n");
    assert.equal(reply.headers["retry-after"], undefined);
  });
});
