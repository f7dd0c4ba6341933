// Compiled (not run) by test.sh: the published types work for a CommonJS TypeScript consumer.
import kubeline = require("kubeline");

export async function run(): Promise<number> {
  const client = new kubeline.Client({ endpoint: "http://127.0.0.1:8080", apiKey: "k" });
  const clusters = await client.listClusters();
  try {
    await client.clusterStatus("nope");
  } catch (e) {
    if (e instanceof kubeline.NotFoundError) return e.status ?? 404;
  }
  return clusters.length;
}
