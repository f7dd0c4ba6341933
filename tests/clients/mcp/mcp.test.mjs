// kubeline's MCP server driven by the official TypeScript MCP client
// (@modelcontextprotocol/client 2.x), in both protocol eras. Run by tests/it/clients.rs (through
// test.sh) against a live broker with an agent on the test bed, named by KUBELINE_TEST_*.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const endpoint = process.env.KUBELINE_TEST_ENDPOINT.replace(/\/$/, '');
const key = process.env.KUBELINE_TEST_API_KEY;
const cluster = process.env.KUBELINE_TEST_CLUSTER;
const otherKey = process.env.KUBELINE_TEST_OTHER_KEY;
const TOOLS = ['list_clusters', 'cluster_status', 'kubectl', 'fleet_kubectl', 'read_result', 'open_session', 'close_session'];

async function connect(mode, apiKey = key) {
  const client = new Client({ name: 'kubeline-tests', version: '1.0.0' }, { versionNegotiation: { mode } });
  const headers = apiKey === null ? {} : { Authorization: `Bearer ${apiKey}` };
  const transport = new StreamableHTTPClientTransport(new URL(`${endpoint}/mcp`), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

const text = (result) => result.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

async function rest(path) {
  const res = await fetch(`${endpoint}${path}`, { headers: { Authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

for (const mode of ['auto', 'legacy']) {
  test(`tools are listed and kubectl answers as REST does (${mode})`, async () => {
    const client = await connect(mode);
    try {
      assert.equal(client.getProtocolEra(), mode === 'auto' ? 'modern' : 'legacy');
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), TOOLS);
      for (const t of tools) {
        assert.equal(t.annotations?.readOnlyHint, true, t.name);
        assert.equal(t.outputSchema?.type, 'object', t.name);
      }
      const pods = await client.callTool({
        name: 'kubectl',
        arguments: { cluster_id: cluster, command_type: 'get', args: ['pods', '-A'] },
      });
      assert.notEqual(pods.isError, true, text(pods));
      assert.equal(pods.structuredContent.exit_code, 0);
      const stored = await rest(`/debug/result/${pods.structuredContent.result_id}`);
      assert.equal(stored.status, 200);
      assert.equal(text(pods), stored.body.output, 'the same bytes as the REST result');
      assert.match(text(pods), /^NAMESPACE +NAME +READY +STATUS/);
    } finally {
      await client.close();
    }
  });

  test(`refusals are tool errors (${mode})`, async () => {
    const client = await connect(mode);
    try {
      const del = await client.callTool({
        name: 'kubectl',
        arguments: { cluster_id: cluster, command_type: 'delete', args: ['pod', 'x'] },
      });
      assert.equal(del.isError, true);
      assert.match(text(del), /delete.*read-only/s);
      const unknown = await client.callTool({
        name: 'kubectl',
        arguments: { cluster_id: 'no-such-cluster', command_type: 'get', args: ['pods'] },
      });
      assert.equal(unknown.isError, true);
      assert.match(text(unknown), /Cluster not found: no-such-cluster/);
      const typed = await client.callTool({
        name: 'kubectl',
        arguments: { cluster_id: cluster, command_type: 'get', args: [1] },
      });
      assert.equal(typed.isError, true);
      assert.match(text(typed), /argument `args\[0\]` must be a string, not a number/);
    } finally {
      await client.close();
    }
    const narrow = await connect(mode, otherKey);
    try {
      const refused = await narrow.callTool({
        name: 'kubectl',
        arguments: { cluster_id: cluster, command_type: 'get', args: ['pods'] },
      });
      assert.equal(refused.isError, true);
      assert.match(text(refused), new RegExp(`may not reach cluster ${cluster}`));
    } finally {
      await narrow.close();
    }
  });

  test(`a cut output is read to the end by windows (${mode})`, async () => {
    const client = await connect(mode);
    try {
      const first = await client.callTool({
        name: 'kubectl',
        arguments: { cluster_id: cluster, command_type: 'get', args: ['pods', '-A', '-o', 'json'], max_bytes: 3000 },
      });
      assert.notEqual(first.isError, true, text(first));
      assert.match(text(first), /\[kubeline: output cut at \d+ of \d+ bytes/);
      const id = first.structuredContent.result_id;
      const parts = [first.structuredContent.output];
      let next = first.structuredContent.window.next_offset;
      while (next !== null) {
        const more = await client.callTool({ name: 'read_result', arguments: { result_id: id, offset: next, limit: 6000 } });
        assert.notEqual(more.isError, true, text(more));
        parts.push(more.structuredContent.output);
        next = more.structuredContent.window.next_offset;
      }
      const whole = await rest(`/debug/result/${id}`);
      assert.equal(parts.join(''), whole.body.output);
      assert.ok(JSON.parse(parts.join('')).items.length > 0);
    } finally {
      await client.close();
    }
  });

  test(`a missing or wrong credential is refused (${mode})`, async () => {
    for (const bad of [null, 'not-a-key']) {
      await assert.rejects(connect(mode, bad), (e) => {
        assert.match(String(e?.message ?? e), /401|nauthorized|credential|API key/i);
        return true;
      });
    }
  });
}
