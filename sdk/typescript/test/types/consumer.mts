// Compiled (not run) by test.sh: the published types work for an ESM TypeScript consumer
// through the package's "exports" map, and catch misuse at compile time.
import {
  Client,
  RateLimitedError,
  type CommandResult,
  type CommandResultModel,
  type components,
  type ErrorCode,
} from "kubeline";

const client = new Client({ endpoint: "http://127.0.0.1:8080", apiKey: "k", maxRetries: 1 });

export async function run(): Promise<string> {
  const session = await client.createDebugSession("prod", { metadata: { user: "me" } });
  const sid: string = session.sessionId;
  const result: CommandResult = await client.execute(sid, "get", ["pods", "-A"], { commandTimeout: 10 });
  const raw: CommandResultModel = result.raw;
  const snake: string = raw.result_id;
  const window = (await client.getResult(snake, { offset: 0, limit: 100 })).window;
  const next: number | null | undefined = window?.next_offset;
  void next;
  // @ts-expect-error: write verbs are not command types
  await client.execute(sid, "delete", ["pods"]);
  // @ts-expect-error: args is an array, never a command line
  await client.execute(sid, "get", "pods -A");
  await client.closeSession(sid);
  const fromOpenapi: components["schemas"]["ClusterStatus"] = (await client.clusterStatus("prod")).status;
  void fromOpenapi;
  return client.withSession("prod", async (s) => (await s.execute("version")).output);
}

export function retryAfter(e: unknown): number | undefined {
  const code: ErrorCode = "rate_limited";
  return e instanceof RateLimitedError && e.code === code ? e.retryAfter : undefined;
}
