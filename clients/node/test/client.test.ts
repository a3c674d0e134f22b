import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { LimitStatus_Algorithm, LimitStatus_Failure, RatelimitdClient, RatelimitdRequestError } from "@ratelimitd/client";
import { Service } from "./support.js";

describe("RatelimitdClient against the service", () => {
  let service: Service;
  let client: RatelimitdClient;
  let caching: RatelimitdClient;

  before(async () => {
    service = await Service.start();
    // A generous deadline: these tests are about answers, not outages.
    client = new RatelimitdClient({ target: service.target, domain: "web", timeoutMs: 2_000 });
    caching = new RatelimitdClient({ target: service.target, domain: "web", timeoutMs: 2_000, denialCache: true });
  });

  after(async () => {
    client.close();
    caching.close();
    await service.kill();
  });

  test("allows, then denies with the service's statuses, headers and waits", async () => {
    const limits = [{ name: "views.login", key: "ip", rate: "2/m", algorithm: "sliding_log" }] as const;
    const first = await client.check({ peerIp: "192.0.2.10" }, { limits });
    assert.equal(first.allowed, true);
    assert.equal(first.code, "OK");
    assert.equal(first.source, "service");
    assert.equal(first.degraded, false);
    assert.equal(first.error, undefined);
    assert.equal(first.retryAfterMs, 0);
    assert.equal(first.remaining, 1);
    assert.equal(first.limit, 2);
    assert.deepEqual(Object.keys(first.headers).sort(), [
      "RateLimit",
      "RateLimit-Policy",
      "X-RateLimit-Limit",
      "X-RateLimit-Remaining",
      "X-RateLimit-Reset",
    ]);
    assert.equal(first.headers["X-RateLimit-Limit"], "2");
    assert.equal(first.headers["X-RateLimit-Remaining"], "1");
    assert.equal(first.headers["RateLimit-Policy"], '"views.login.default";q=2;w=60');
    assert.equal(first.statuses.length, 1);
    const [status0] = first.statuses;
    assert.equal(status0?.rule, "views.login");
    assert.equal(status0?.limitName, "default");
    assert.equal(status0?.algorithm, LimitStatus_Algorithm.SLIDING_LOG);
    assert.equal(status0?.windowMs, 60_000);
    assert.equal(status0?.failure, LimitStatus_Failure.FAILURE_NONE);

    assert.equal((await client.check({ peerIp: "192.0.2.10" }, { limits })).remaining, 0);
    const denied = await client.check({ peerIp: "192.0.2.10" }, { limits });
    assert.equal(denied.allowed, false);
    assert.equal(denied.code, "OVER_LIMIT");
    assert.equal(denied.source, "service");
    assert.equal(denied.remaining, 0);
    assert.equal(denied.limit, 2);
    assert.ok(denied.retryAfterMs > 59_000 && denied.retryAfterMs <= 60_000, `retryAfterMs ${denied.retryAfterMs}`);
    assert.equal(denied.headers["Retry-After"], String(Math.ceil(denied.retryAfterMs / 1000)));
    assert.equal(denied.statuses[0]?.overLimit, true);
  });

  test("counts an IPv4-mapped peer address as its IPv4 address", async () => {
    const limits = [{ name: "mapped", key: "ip", rate: "1/m", algorithm: "sliding_log" }] as const;
    assert.equal((await client.check({ peerIp: "::ffff:192.0.2.20" }, { limits })).allowed, true);
    assert.equal((await client.check({ peerIp: "192.0.2.20" }, { limits })).allowed, false);
    assert.equal((await client.check({ peerIp: "192.0.2.21" }, { limits })).allowed, true);
  });

  test("cost 0 asks without consuming", async () => {
    const limits = [{ name: "peek", rate: "1/m", algorithm: "sliding_log" }] as const;
    for (let i = 0; i < 3; i += 1) {
      const peek = await client.check({}, { cost: 0, limits });
      assert.equal(peek.allowed, true);
      assert.equal(peek.remaining, 1);
    }
    assert.equal((await client.check({}, { limits })).remaining, 0);
    assert.equal((await client.check({}, { cost: 0, limits })).allowed, false);
  });

  test("a request the service refuses is a typed error, not a fallback", async () => {
    await assert.rejects(client.check({}, { limits: [{ name: "bad", rate: "1/fortnight" }] }), (error: unknown) => {
      assert.ok(error instanceof RatelimitdRequestError);
      assert.equal(error.grpcCode, status.INVALID_ARGUMENT);
      assert.match(error.message, /^ratelimitd: INVALID_ARGUMENT: limits\[0\]\.rate: `fortnight` is not a unit/);
      return true;
    });
    await assert.rejects(client.check({ domain: "partners" }, { limits: [{ name: "jobs", rate: "1/m" }] }), (error: unknown) => {
      assert.ok(error instanceof RatelimitdRequestError);
      assert.equal(error.grpcCode, status.FAILED_PRECONDITION);
      return true;
    });
    assert.equal(client.breakerState, "CLOSED");
  });

  test("the denial cache repeats a denial without a call until its retry-after", async () => {
    const limits = [{ name: "cached", key: "ip", rate: "1/m", algorithm: "sliding_log" }] as const;
    assert.equal((await caching.check({ peerIp: "192.0.2.30" }, { limits })).allowed, true);
    const denied = await caching.check({ peerIp: "192.0.2.30" }, { limits });
    assert.equal(denied.source, "service");
    const calls = await service.calls();
    const cached = await caching.check({ peerIp: "192.0.2.30" }, { limits });
    assert.equal(await service.calls(), calls, "no call for a cached denial");
    assert.equal(cached.allowed, false);
    assert.equal(cached.code, "OVER_LIMIT");
    assert.equal(cached.source, "cache");
    assert.deepEqual(cached.headers, denied.headers);
    assert.ok(cached.retryAfterMs > 0 && cached.retryAfterMs <= denied.retryAfterMs);
    // Another request is another fingerprint.
    assert.equal((await caching.check({ peerIp: "192.0.2.31" }, { limits })).source, "service");
    assert.equal(await service.calls(), calls + 1);
  });

  test("the denial cache never answers for a count_denied limit", async () => {
    const limits = [{ name: "counted", key: "ip", rate: "1/m", countDenied: true }] as const;
    assert.equal((await caching.check({ peerIp: "192.0.2.40" }, { limits })).allowed, true);
    assert.equal((await caching.check({ peerIp: "192.0.2.40" }, { limits })).source, "service");
    const calls = await service.calls();
    const again = await caching.check({ peerIp: "192.0.2.40" }, { limits });
    assert.equal(again.source, "service");
    assert.equal(again.allowed, false);
    assert.equal(await service.calls(), calls + 1);
  });
});
