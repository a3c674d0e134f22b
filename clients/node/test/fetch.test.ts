import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import createApp from "express";
import { RatelimitdClient, rateLimitAwareFetch, RetryBudget } from "@ratelimitd/client";
import { express as ratelimitd } from "@ratelimitd/client/express";
import { listen, Service } from "./support.js";

describe("rateLimitAwareFetch against an app limited by the service", () => {
  let service: Service;
  let client: RatelimitdClient;
  let server: Server;
  let url: string;
  /** Requests the app received, by path. */
  const received = new Map<string, number>();

  before(async () => {
    service = await Service.start();
    client = new RatelimitdClient({ target: service.target, domain: "web", timeoutMs: 2_000 });
    const app = createApp();
    app.use((req, _res, next) => {
      received.set(req.path, (received.get(req.path) ?? 0) + 1);
      next();
    });
    // Each path its own limit: one a second, or one a minute under /slow.
    app.use(
      ratelimitd({
        client,
        limits: [{ name: "fetch", key: ["path"], rate: (req) => (req.path.startsWith("/slow") ? "1/m" : "1/s"), algorithm: "sliding_log" }],
      }),
    );
    app.all("/{*path}", (_req, res) => {
      res.send("ok");
    });
    server = createServer(app);
    url = await listen(server);
  });

  after(async () => {
    server.close();
    client.close();
    await service.kill();
  });

  const options = { jitterMs: 0 };

  test("waits Retry-After and retries an idempotent request", async () => {
    assert.equal((await rateLimitAwareFetch(`${url}/get`, {}, options)).status, 200);
    const started = performance.now();
    const response = await rateLimitAwareFetch(`${url}/get`, {}, options);
    const waited = performance.now() - started;
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ok");
    assert.equal(received.get("/get"), 3);
    assert.ok(waited >= 1_000 && waited < 2_500, `waited ${waited} ms for Retry-After: 1`);
  });

  test("never retries a non-idempotent request unless told to", async () => {
    const post = { method: "POST", body: "x" };
    assert.equal((await rateLimitAwareFetch(`${url}/post`, post, options)).status, 200);
    assert.equal((await rateLimitAwareFetch(`${url}/post`, post, options)).status, 429);
    assert.equal(received.get("/post"), 2);
    assert.equal((await rateLimitAwareFetch(`${url}/post`, post, { ...options, retryNonIdempotent: true })).status, 200);
    assert.equal(received.get("/post"), 4);
  });

  test("returns a refusal at once when it asks for more than maxRetryAfterMs", async () => {
    assert.equal((await rateLimitAwareFetch(`${url}/slow`, {}, options)).status, 200);
    const started = performance.now();
    const response = await rateLimitAwareFetch(`${url}/slow`, {}, { ...options, maxRetryAfterMs: 5_000 });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("retry-after"), "60");
    assert.ok(performance.now() - started < 1_000);
    assert.equal(received.get("/slow"), 2);
  });

  test("keeps within maxRetries and the retry budget", async () => {
    assert.equal((await rateLimitAwareFetch(`${url}/slow/retries`, {}, options)).status, 200);
    const response = await rateLimitAwareFetch(`${url}/slow/retries`, {}, { ...options, maxRetries: 0, maxRetryAfterMs: 120_000 });
    assert.equal(response.status, 429);
    assert.equal(received.get("/slow/retries"), 2);

    const budget = new RetryBudget({ ratio: 0, max: 1 });
    assert.equal(budget.available, 1);
    assert.equal((await rateLimitAwareFetch(`${url}/budget`, {}, { ...options, budget })).status, 200);
    assert.equal((await rateLimitAwareFetch(`${url}/budget`, {}, { ...options, budget })).status, 200, "retried once");
    assert.equal(budget.available, 0);
    assert.equal((await rateLimitAwareFetch(`${url}/budget`, {}, { ...options, budget })).status, 429, "budget spent");
    assert.equal(received.get("/budget"), 4);
  });

  test("an abort during the wait rejects with its reason", async () => {
    assert.equal((await rateLimitAwareFetch(`${url}/abort`, {}, options)).status, 200);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("gave up")), 100);
    await assert.rejects(rateLimitAwareFetch(`${url}/abort`, { signal: controller.signal }, options), /gave up/);
    assert.equal(received.get("/abort"), 2);
  });
});
