import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

function files(directory: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of readdirSync(directory, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      found.set(relative(directory, path), readFileSync(path, "utf8"));
    }
  }
  return found;
}

test("src/gen is what `npm run generate` makes of proto/", () => {
  const out = mkdtempSync(join(tmpdir(), "ratelimitd-gen-"));
  execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--template", "buf.gen.yaml", "-o", out], { cwd: root });
  const fresh = files(join(out, "src/gen"));
  const committed = files(join(root, "src/gen"));
  assert.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort());
  for (const [path, text] of fresh) {
    assert.ok(committed.get(path) === text, `src/gen/${path} is stale: run \`npm run generate\``);
  }
});
