#!/usr/bin/env node
// Builds dist/esm (ES modules) and dist/cjs (CommonJS) with tsc, each with its .d.ts files.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let tsc;
try {
  tsc = createRequire(join(pkgDir, "package.json")).resolve("typescript/bin/tsc");
} catch {
  console.error(`build: typescript is not installed; run ${join(pkgDir, "setup.sh")} first`);
  process.exit(2);
}

rmSync(join(pkgDir, "dist"), { recursive: true, force: true });
for (const [config, type] of [
  ["tsconfig.esm.json", "module"],
  ["tsconfig.cjs.json", "commonjs"],
]) {
  try {
    execFileSync(process.execPath, [tsc, "-p", config], { cwd: pkgDir, stdio: "inherit" });
  } catch {
    console.error(`build: tsc -p ${config} failed (see above)`);
    process.exit(1);
  }
  const out = join(pkgDir, "dist", type === "module" ? "esm" : "cjs");
  if (!existsSync(out)) mkdirSync(out, { recursive: true });
  // Each tree says how Node must load its .js files, whatever the package's own "type" says.
  writeFileSync(join(out, "package.json"), JSON.stringify({ type }, null, 2) + "\n");
}
console.log("build: dist/esm and dist/cjs written");
