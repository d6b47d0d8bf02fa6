// End-to-end browser test of `seedtok serve` (issue 10).
//
// Starts the server on 127.0.0.1 (a free port), drives Debian's chromium headless through
// playwright-core (no browser download), and checks: upload -> 32 ids + a reconstruction;
// bad uploads (text file, huge image) -> an error in the page and the server keeps serving;
// ask -> an answer; caption; draw -> an image; compare -> a shared prefix. Screenshots go to
// tests/web/artifacts/. Only localhost is contacted (every other request is aborted); every
// wait is bounded; the server is stopped by this script whatever happens.
//
// Env: PYTHON (default: <repo>/.venv/bin/python), CHROMIUM (default: /usr/bin/chromium),
// SEEDTOK_MODEL (optional bundle dir), E2E_TIMEOUT_S (default 300).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const artifacts = path.join(here, "artifacts");
const fixtures = path.join(artifacts, "fixtures");
const python = process.env.PYTHON || path.join(repo, ".venv", "bin", "python");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const totalTimeout = 1000 * Number(process.env.E2E_TIMEOUT_S || 300);
const samples = path.join(repo, "src", "seedtok", "assets", "samples");
const t0 = Date.now();
const log = (msg) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

let server = null;
let browser = null;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForServer(url, proc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited early with code ${proc.exitCode} (see artifacts/server.log)`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`server not answering at ${url} after ${timeoutMs / 1000}s`);
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  server.kill("SIGTERM");
  const exited = await Promise.race([
    new Promise((r) => server.once("exit", () => r(true))),
    new Promise((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!exited) server.kill("SIGKILL");
}

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${path.relative(repo, file)}`);
}

async function openTab(page, url, tab) {
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 60000 });
  await page.locator("#banner").waitFor({ timeout: 60000 });
  if (tab) await page.getByRole("tab", { name: tab }).click({ timeout: 15000 });
}

async function upload(page, elemId, file) {
  await page.locator(`#${elemId} input[type=file]`).setInputFiles(file, { timeout: 15000 });
}

async function expectError(page, statusId, pattern, name) {
  const err = page.locator(`#${statusId} .web-error`);
  await err.waitFor({ timeout: 60000 });
  const text = await err.innerText();
  if (!pattern.test(text)) throw new Error(`${name}: unexpected error text: ${text}`);
  log(`${name}: error shown: ${text.trim()}`);
  await shot(page, name);
}

async function expectIds(page, stripId, n = 32) {
  await page.locator(`#${stripId} .tok-id`).nth(n - 1).waitFor({ timeout: 90000 });
  const count = await page.locator(`#${stripId} .tok-id`).count();
  if (count !== n) throw new Error(`#${stripId}: ${count} ids, expected ${n}`);
}

async function expectImage(page, elemId) {
  const img = page.locator(`#${elemId} img`);
  await img.first().waitFor({ state: "visible", timeout: 90000 });
  await page.waitForFunction(
    (sel) => { const el = document.querySelector(sel); return el && el.complete && el.naturalWidth > 0; },
    `#${elemId} img`, { timeout: 30000 },
  );
}

async function expectText(page, elemId) {
  const box = page.locator(`#${elemId} textarea, #${elemId} input`).first();
  await page.waitForFunction(
    (sel) => { const el = document.querySelector(sel); return el && el.value.trim().length > 0; },
    `#${elemId} textarea, #${elemId} input`, { timeout: 90000 },
  );
  return (await box.inputValue()).trim();
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  const fx = spawnSync(python, [path.join(here, "make_fixtures.py"), fixtures], { encoding: "utf8", timeout: 60000 });
  if (fx.status !== 0) throw new Error(`fixtures failed: ${fx.stderr || fx.error}`);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const args = ["-c", "import sys; from seedtok.cli import main; sys.exit(main())", "serve", "--host", "127.0.0.1",
    "--port", String(port), "--threads", "2"];
  if (process.env.SEEDTOK_MODEL) args.push("--model", process.env.SEEDTOK_MODEL);
  const logFile = fs.openSync(path.join(artifacts, "server.log"), "w");
  log(`starting server: ${python} ... serve --port ${port}`);
  server = spawn(python, args, {
    cwd: repo, stdio: ["ignore", logFile, logFile],
    env: { ...process.env, GRADIO_ANALYTICS_ENABLED: "False", PYTHONUNBUFFERED: "1", NO_PROXY: "127.0.0.1,localhost" },
  });
  await waitForServer(url, server, 240000);
  log("server up");

  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route("**/*", (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === "127.0.0.1" || host === "localhost" ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(60000);

  // 1. Tokenize: 32 ids and a reconstruction.
  await openTab(page, url, null);
  await upload(page, "tok-upload", path.join(samples, "chelsea.png"));
  await expectIds(page, "tok-strip");
  await expectImage(page, "tok-recon");
  log(`tokenize: 32 ids: ${await page.locator("#tok-ids textarea, #tok-ids input").first().inputValue()}`);
  await shot(page, "tokenize");

  // 2. Bad uploads: an error in the page, then the server still serves.
  await openTab(page, url, null);
  await upload(page, "tok-upload", path.join(fixtures, "notes.txt"));
  await expectError(page, "tok-status", /not a recognised image/, "bad-upload-text");
  await openTab(page, url, null);
  await upload(page, "tok-upload", path.join(fixtures, "huge.png"));
  await expectError(page, "tok-status", /megapixels exceeds the limit/, "bad-upload-huge");
  await openTab(page, url, null);
  await upload(page, "tok-upload", path.join(samples, "coffee.png"));
  await expectIds(page, "tok-strip");
  log("server still serving after bad uploads");

  // 3. Caption & Ask.
  await openTab(page, url, "Caption & Ask");
  await upload(page, "ask-upload", path.join(samples, "coffee.png"));
  await expectImage(page, "ask-preview");
  await page.locator("#ask-question textarea, #ask-question input").first().fill("what color is the shape?");
  await page.locator("#ask-run").click();
  log(`ask: answer: ${await expectText(page, "ask-answer")}`);
  await page.locator("#caption-run").click();
  log(`caption: ${await expectText(page, "caption-text")}`);
  await shot(page, "ask");

  // 4. Draw.
  await openTab(page, url, "Draw");
  await page.locator("#draw-prompt textarea, #draw-prompt input").first().fill("a blue square at the bottom right");
  await page.locator("#draw-run").click();
  await expectImage(page, "draw-image");
  await expectIds(page, "draw-strip");
  log("draw: image and 32 ids");
  await shot(page, "draw");

  // 5. Compare: an image against itself shares all 32; against another, a shorter prefix.
  await openTab(page, url, "Compare");
  await upload(page, "cmp-upload-a", path.join(samples, "chelsea.png"));
  await upload(page, "cmp-upload-b", path.join(samples, "astronaut.png"));
  await page.waitForTimeout(500);
  for (let attempt = 0; attempt < 20; attempt++) {  // uploads finish asynchronously; retry the click a bounded number of times
    await page.locator("#cmp-run").click();
    try { await page.locator("#cmp-strips .tok-compare").waitFor({ timeout: 5000 }); break; } catch { /* retry */ }
  }
  const prefix = await page.locator("#cmp-strips .tok-compare").getAttribute("data-prefix", { timeout: 10000 });
  await expectIds(page, "cmp-strips", 64);
  log(`compare: shared prefix ${prefix}`);
  await shot(page, "compare");
  log("PASS");
}

const watchdog = setTimeout(async () => {
  console.error(`[e2e] FAIL: overall timeout of ${totalTimeout / 1000}s`);
  await stopServer();
  process.exit(1);
}, totalTimeout);

let code = 0;
try {
  await main();
} catch (err) {
  console.error(`[e2e] FAIL: ${err && err.stack ? err.stack : err}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  if (browser) await browser.close().catch(() => {});
  await stopServer();
}
process.exit(code);
