// Shared by the live tests: the broker of the test contract, found only through the
// KUBELINE_TEST_* environment variables (test.sh documents them).
import { Client } from "kubeline";

export function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set. These tests run against a live kubeline broker + agent: set ` +
        "KUBELINE_TEST_ENDPOINT, KUBELINE_TEST_API_KEY, KUBELINE_TEST_CLUSTER, KUBELINE_TEST_OTHER_KEY " +
        "and KUBELINE_TEST_DEAD_ENDPOINT (see sdk/typescript/README.md, \"Tests\").",
    );
  }
  return value;
}

export const ENDPOINT = env("KUBELINE_TEST_ENDPOINT");
export const API_KEY = env("KUBELINE_TEST_API_KEY");
export const CLUSTER = env("KUBELINE_TEST_CLUSTER");
export const OTHER_KEY = env("KUBELINE_TEST_OTHER_KEY");
export const DEAD_ENDPOINT = env("KUBELINE_TEST_DEAD_ENDPOINT");

export function client(options = {}) {
  return new Client({ endpoint: ENDPOINT, apiKey: API_KEY, ...options });
}

/** A `fetch` that records the status (or the failure) of every attempt. */
export function recordingFetch() {
  const calls = [];
  const wrapped = async (url, init) => {
    const entry = { method: init?.method ?? "GET", url: String(url), at: Date.now() };
    calls.push(entry);
    try {
      const response = await fetch(url, init);
      entry.status = response.status;
      return response;
    } catch (error) {
      entry.error = error;
      throw error;
    }
  };
  return { fetch: wrapped, calls };
}

/** Makes an API key through `POST /admin/api-keys` (plain fetch: the SDK has no admin API). */
export async function createApiKey(body) {
  const response = await fetch(`${ENDPOINT}/admin/api-keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status !== 201) {
    throw new Error(`POST /admin/api-keys answered ${response.status}: ${JSON.stringify(answer)}`);
  }
  return answer;
}

export async function revokeApiKey(id) {
  await fetch(`${ENDPOINT}/admin/api-keys/${encodeURIComponent(id)}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${API_KEY}` },
  });
}

/** Runs `fn` and returns the error it throws (failing when it does not). */
export async function thrown(fn) {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, but the call succeeded");
}
