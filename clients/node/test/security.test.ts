import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { RatelimitdClient, RatelimitdRequestError, tlsCredentials } from "@ratelimitd/client";
import { Service } from "./support.js";

const TOKEN = "team-a-node-token";

/** A CA and a server certificate for 127.0.0.1, made with the openssl command. */
function certificates(): string {
  const dir = mkdtempSync(join(tmpdir(), "ratelimitd-node-tls-"));
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext");
  return dir;
}

describe("RatelimitdClient over TLS with a bearer token", () => {
  let service: Service;
  let dir: string;

  before(async () => {
    dir = certificates();
    const hash = createHash("sha256").update(TOKEN).digest("hex");
    const policy = `auth:\n  identities:\n    - {name: team-a, tokens: [{sha256: ${hash}}], domains: [team-a]}\n`;
    service = await Service.start(policy, ["--tls-cert", join(dir, "server.crt"), "--tls-key", join(dir, "server.key")]);
  });

  after(async () => {
    await service.kill();
  });

  test("the token names the identity; other domains and no token are refused", async () => {
    const credentials = tlsCredentials({ caFile: join(dir, "ca.crt") });
    const client = new RatelimitdClient({ target: service.target, domain: "team-a", timeoutMs: 5_000, credentials, token: TOKEN });
    const anonymous = new RatelimitdClient({ target: service.target, domain: "team-a", timeoutMs: 5_000, credentials });
    try {
      assert.equal((await client.check()).allowed, true);
      await assert.rejects(client.check({ domain: "team-b" }), (error: unknown) => {
        assert.ok(error instanceof RatelimitdRequestError);
        assert.equal(error.grpcCode, status.PERMISSION_DENIED);
        assert.equal(error.message, 'ratelimitd: PERMISSION_DENIED: identity "team-a" may not check domain "team-b"');
        return true;
      });
      await assert.rejects(anonymous.check(), (error: unknown) => {
        assert.ok(error instanceof RatelimitdRequestError);
        assert.equal(error.grpcCode, status.UNAUTHENTICATED);
        return true;
      });
    } finally {
      client.close();
      anonymous.close();
    }
  });

  test("a certificate without its key is refused", () => {
    assert.throws(() => tlsCredentials({ certFile: join(dir, "server.crt") }), /certFile and keyFile go together/);
  });
});
