import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import {
  closedDecision,
  LimitStatus_Failure,
  openDecision,
  RatelimitdClient,
  type RatelimitdClientOptions,
  RatelimitdUnavailableError,
} from "@ratelimitd/client";
import { Service } from "./support.js";

describe("when the service is gone", () => {
  let target: string;
  const clients: RatelimitdClient[] = [];
  // A refused connection is UNAVAILABLE at once; the generous deadline keeps
  // a loaded machine from turning it into DEADLINE_EXCEEDED first.
  const connect = (options: Partial<RatelimitdClientOptions>) => {
    const client = new RatelimitdClient({ target, domain: "web", timeoutMs: 5000, ...options });
    clients.push(client);
    return client;
  };

  before(async () => {
    const service = await Service.start();
    target = service.target;
    await service.kill();
  });

  after(() => clients.forEach((client) => client.close()));

  test("open (the default) allows, degraded, without headers", async () => {
    const decision = await connect({}).check({ peerIp: "192.0.2.1" }, { limits: [{ name: "a", rate: "1/m" }] });
    assert.equal(decision.allowed, true);
    assert.equal(decision.code, "OK");
    assert.equal(decision.source, "fallback");
    assert.equal(decision.degraded, true);
    assert.deepEqual(decision.headers, {});
    assert.deepEqual(decision.statuses, []);
    assert.equal(decision.remaining, undefined);
    assert.ok(decision.error instanceof RatelimitdUnavailableError);
    assert.equal(decision.error.grpcCode, status.UNAVAILABLE);
    assert.equal(decision.error.breakerOpen, false);
  });

  test("closed denies with code UNAVAILABLE", async () => {
    const decision = await connect({ onError: "closed" }).check();
    assert.equal(decision.allowed, false);
    assert.equal(decision.code, "UNAVAILABLE");
    assert.equal(decision.source, "fallback");
    assert.equal(decision.degraded, true);
    assert.deepEqual(decision.headers, {});
  });

  test("local decides from the declared limits, divided among replicas, counted exactly", async () => {
    const client = connect({ onError: "local", localReplicas: 2 });
    // 5 an hour over 2 replicas: 3 here.
    const limits = [{ name: "views.search", key: "ip", rate: "5/h", algorithm: "token_bucket" }] as const;
    const remaining: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const decision = await client.check({ peerIp: "::ffff:192.0.2.50" }, { limits });
      assert.equal(decision.allowed, true);
      assert.equal(decision.source, "fallback");
      assert.equal(decision.degraded, true);
      assert.equal(decision.limit, 3);
      remaining.push(decision.remaining ?? -1);
    }
    assert.deepEqual(remaining, [2, 1, 0]);
    const denied = await client.check({ peerIp: "192.0.2.50" }, { limits });
    assert.equal(denied.allowed, false);
    assert.equal(denied.code, "OVER_LIMIT");
    assert.deepEqual(denied.headers, {}, "headers are the service's only");
    assert.ok(denied.retryAfterMs > 0 && denied.retryAfterMs <= 3_600_000);
    assert.equal(denied.statuses[0]?.failure, LimitStatus_Failure.LOCAL);
    assert.equal(denied.statuses[0]?.rule, "views.search");
    assert.equal(denied.statuses[0]?.windowMs, 3_600_000);
    assert.equal(denied.statuses[0]?.overLimit, true);
    // Another client has its own counter; IPv6 clients count per /64.
    assert.equal((await client.check({ peerIp: "192.0.2.51" }, { limits })).remaining, 2);
    assert.equal((await client.check({ peerIp: "2001:db8::1" }, { limits })).remaining, 2);
    assert.equal((await client.check({ peerIp: "2001:db8:0:0:ffff::2" }, { limits })).remaining, 1);
    assert.equal((await client.check({ peerIp: "2001:db8:0:1::1" }, { limits })).remaining, 2);
    // A token bucket or GCRA admits its burst, when larger than its count.
    const bucket = [{ name: "bucket", rate: "1/h", algorithm: "token_bucket", burst: 4 }] as const;
    assert.equal((await client.check({}, { limits: bucket })).limit, 2);
    // A limit whose key has no value here does not apply; a cost 0 consumes nothing.
    assert.equal((await client.check({}, { limits: [{ name: "u", key: "user", rate: "0/h" }] })).allowed, true);
    assert.equal((await client.check({ user: "u1" }, { cost: 0, limits: [{ name: "v", key: "user", rate: "1/h" }] })).remaining, 1);
  });

  test("local decides every limit at once: a denial consumes nothing, shadow limits never deny", async () => {
    const client = connect({ onError: "local" });
    const wide = { name: "wide", rate: "10/h" };
    const narrow = { name: "narrow", rate: "1/h" };
    const shadow = { name: "shadow", rate: "0/h", shadow: true };
    assert.equal((await client.check({}, { limits: [wide, narrow, shadow] })).allowed, true);
    const denied = await client.check({}, { limits: [wide, narrow] });
    assert.equal(denied.allowed, false);
    assert.equal(denied.statuses.find((s) => s.rule === "wide")?.remaining, 9, "the denial consumed nothing");
    const shadowed = await client.check({}, { limits: [wide, shadow] });
    assert.equal(shadowed.allowed, true);
    assert.equal(shadowed.shadowed, true);
    assert.equal(shadowed.remaining, 8);
  });

  test("a callback decides with the error and the request", async () => {
    const seen: string[] = [];
    const client = connect({
      onError: (error, request) => {
        seen.push(`${error.constructor.name} ${request.domain} ${request.path} ${request.limits.map((l) => l.name).join()}`);
        return request.path.startsWith("/admin") ? closedDecision(error) : openDecision(error);
      },
    });
    const limits = [{ name: "x", rate: "1/m" }];
    assert.equal((await client.check({ path: "/admin/users" }, { limits })).code, "UNAVAILABLE");
    assert.equal((await client.check({ path: "/home" }, { limits })).code, "OK");
    assert.deepEqual(seen, ["RatelimitdUnavailableError web /admin/users x", "RatelimitdUnavailableError web /home x"]);
  });
});

describe("the circuit breaker", () => {
  let service: Service;

  before(async () => {
    service = await Service.start();
  });

  after(async () => {
    service.resume();
    await service.kill();
  });

  /** Times one check: [milliseconds, decision]. */
  async function timed(client: RatelimitdClient) {
    const started = performance.now();
    const decision = await client.check();
    return [performance.now() - started, decision] as const;
  }

  test("pays the deadline only until it opens", async () => {
    const client = new RatelimitdClient({
      target: service.target,
      domain: "web",
      timeoutMs: 150,
      breaker: { failureThreshold: 3, recoveryTimeoutMs: 60_000 },
    });
    assert.equal((await client.check()).source, "service");
    await service.pause();
    try {
      const durations: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const [ms, decision] = await timed(client);
        assert.equal(decision.source, "fallback");
        assert.equal(decision.error?.breakerOpen, i >= 3);
        if (i < 3) assert.equal(decision.error?.grpcCode, status.DEADLINE_EXCEEDED);
        durations.push(ms);
      }
      assert.deepEqual(
        durations.map((ms) => ms >= 140),
        [true, true, true, false, false, false, false, false, false, false],
        `durations ${durations.map(Math.round).join()}`,
      );
      assert.equal(client.breakerState, "OPEN");
    } finally {
      service.resume();
      client.close();
    }
  });

  test("probes once when half open, doubles its open time on a failed probe, closes on success", async () => {
    const client = new RatelimitdClient({
      target: service.target,
      domain: "web",
      timeoutMs: 100,
      breaker: { failureThreshold: 1, recoveryTimeoutMs: 300, maxRecoveryTimeoutMs: 600 },
    });
    assert.equal((await client.check()).source, "service");
    await service.pause();
    try {
      assert.equal((await client.check()).error?.grpcCode, status.DEADLINE_EXCEEDED);
      assert.equal(client.breakerState, "OPEN");
      assert.equal((await client.check()).error?.breakerOpen, true);
      await sleep(320);
      assert.equal(client.breakerState, "HALF_OPEN");
      // The probe, and a concurrent call that is not one.
      const [probe, other] = await Promise.all([client.check(), client.check()]);
      assert.equal(probe.error?.grpcCode, status.DEADLINE_EXCEEDED);
      assert.equal(other.error?.breakerOpen, true);
      assert.equal(client.breakerState, "OPEN");
      await sleep(320);
      assert.equal(client.breakerState, "OPEN", "open for 600 ms after a failed probe");
      await sleep(320);
      assert.equal(client.breakerState, "HALF_OPEN");
      service.resume();
      const recovered = await client.check();
      assert.equal(recovered.source, "service");
      assert.equal(client.breakerState, "CLOSED");
    } finally {
      service.resume();
      client.close();
    }
  });
});
