// Builds dist/: assent.js (classic script), assent.esm.js (ES module), the on-demand
// modules (lang-de, lang-fr, tcf), a content-hashed copy of each, and manifest.json with
// the gzipped sizes. `--tests` also bundles test/unit/*.test.ts for node's test runner.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const version = JSON.parse(readFileSync("package.json", "utf8")).version;
const common = { bundle: true, minify: true, target: "es2020", write: false, legalComments: "none" };
const hash = (b) => createHash("sha256").update(b).digest("hex").slice(0, 8);
const gz = (b) => gzipSync(b, { level: 9 }).length;

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
const manifest = { version, files: {}, gzipBytes: {} };

function emit(name, ext, bytes) {
  const hashed = `${name}.${hash(bytes)}.${ext}`;
  writeFileSync(`dist/${name}.${ext}`, bytes);
  writeFileSync(`dist/${hashed}`, bytes);
  manifest.files[name] = hashed;
  manifest.gzipBytes[name] = gz(bytes);
  return hashed;
}

const chunks = {};
for (const [name, entry] of [["lang-de", "src/lang/de.ts"], ["lang-fr", "src/lang/fr.ts"], ["tcf", "src/tcf/index.ts"]]) {
  const r = await build({ ...common, entryPoints: [entry], format: "iife" });
  chunks[name] = emit(name, "js", r.outputFiles[0].contents);
}
const define = { __ASSENT_VERSION__: JSON.stringify(version), __ASSENT_CHUNKS__: JSON.stringify(chunks) };
const main = await build({ ...common, entryPoints: ["src/main.ts"], format: "iife", define });
emit("assent", "js", main.outputFiles[0].contents);
const esm = await build({ ...common, entryPoints: ["src/esm.ts"], format: "esm", define });
emit("assent.esm", "js", esm.outputFiles[0].contents);
writeFileSync("dist/manifest.json", JSON.stringify(manifest, null, 2) + "\n");
for (const [k, v] of Object.entries(manifest.gzipBytes)) console.log(`${k.padEnd(11)} ${(v / 1024).toFixed(2)} KB gzipped`);

if (process.argv.includes("--tests")) {
  rmSync("build", { recursive: true, force: true });
  const tests = readdirSync("test/unit").filter((f) => f.endsWith(".test.ts"));
  await build({
    entryPoints: tests.map((f) => `test/unit/${f}`),
    outdir: "build/unit",
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    define,
    logLevel: "warning",
  });
}
