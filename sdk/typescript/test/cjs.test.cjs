// The CommonJS build, through the package's "exports" map (`require("kubeline")`), against the
// live broker of the test contract.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const kubeline = require("kubeline");

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (see sdk/typescript/README.md, "Tests")`);
  return value;
}

test("require('kubeline') loads the CommonJS build", () => {
  assert.match(require.resolve("kubeline"), /[\\/]dist[\\/]cjs[\\/]index\.js$/);
  assert.equal(typeof kubeline.Client, "function");
  assert.equal(kubeline.VERSION, require("kubeline/package.json").version);
});

test("CommonJS: health, a command in a session, and a typed error", async () => {
  const client = new kubeline.Client({
    endpoint: env("KUBELINE_TEST_ENDPOINT"),
    apiKey: env("KUBELINE_TEST_API_KEY"),
  });
  assert.equal((await client.health()).status, "healthy");
  const cluster = env("KUBELINE_TEST_CLUSTER");
  const output = await client.withSession(cluster, async (session) => {
    const result = await client.execute(session.sessionId, "get", ["namespaces"]);
    assert.equal(result.status, "completed");
    return result.output;
  });
  assert.match(output, /\bkube-system\b/);

  const error = await client.clusterStatus("no-such-cluster-sdk-ts-cjs").then(
    () => assert.fail("expected a 404"),
    (e) => e,
  );
  assert.ok(error instanceof kubeline.NotFoundError, `${error.name}: ${error.message}`);
  assert.ok(error instanceof kubeline.KubelineError);
  assert.equal(error.status, 404);
});
