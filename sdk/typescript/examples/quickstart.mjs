// node examples/quickstart.mjs CLUSTER   (with KUBELINE_ENDPOINT and KUBELINE_API_KEY set)
import { Client, KubelineConnectionError, KubelineError } from "kubeline";

const cluster = process.argv[2] ?? "production-cluster";
const client = new Client(); // endpoint and apiKey from KUBELINE_ENDPOINT / KUBELINE_API_KEY

try {
  console.log("broker:", (await client.health()).status);
  for (const c of await client.listClusters()) console.log(`cluster ${c.clusterId}: ${c.status}`);

  // The contract's shape: create, execute, close.
  const session = await client.createDebugSession(cluster);
  try {
    const pods = await client.execute(session.sessionId, "get", ["pods", "-A"]);
    console.log(pods.output);
    const version = await client.execute(session.sessionId, "version", []);
    console.log(version.output);
  } finally {
    await client.closeSession(session.sessionId);
  }

  // The same with a session that is always closed.
  const events = await client.withSession(cluster, (s) => s.execute("events", ["-A"]));
  console.log(`${events.status}, exit code ${events.exitCode}, ${events.output.split("\n").length - 1} lines`);
} catch (error) {
  if (error instanceof KubelineConnectionError) {
    console.error(error.message); // names the URL and what failed
  } else if (error instanceof KubelineError) {
    console.error(`${error.name} (${error.status} ${error.code}): ${error.message}`);
  } else {
    throw error;
  }
  process.exitCode = 1;
}
