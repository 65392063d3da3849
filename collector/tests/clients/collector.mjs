// Starts the real collector binary on a random port with a fresh SQLite file, for the
// JavaScript tests (Segment's Node library here, the web banner's browser tests).
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** `env`: extra ASSENT_* settings. Resolves once /readyz answers. */
export async function startCollector({ writeKey, admin, env = {} }) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "assent-js-"));
  const binary = process.env.COLLECTOR_BIN ?? path.join(root, "target/debug/assent-collector");
  const child = spawn(binary, ["serve"], {
    env: {
      ...process.env,
      ASSENT_BIND: `127.0.0.1:${port}`,
      ASSENT_DATABASE_URL: `sqlite://${dir}/assent.db`,
      ASSENT_BOOTSTRAP_WRITE_KEY: writeKey,
      ASSENT_BOOTSTRAP_ADMIN_TOKEN: admin,
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { url, child };
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error("collector did not start");
}
