// Browser test of the demo report (issue 17): opens demo/report.html in Debian's chromium
// (headless, through playwright-core), with every network request refused (the page must be
// self-contained: images are data URIs), and checks that every <img> loaded (complete, natural
// size > 0), that the metrics table and each section are there, and that report.json has every
// documented key. Screenshot: tests/web/artifacts/report.png.
//
// Env: REPORT (default: <repo>/demo/report.html), CHROMIUM (default: /usr/bin/chromium).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const report = path.resolve(process.env.REPORT || path.join(repo, "demo", "report.html"));
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const artifacts = path.join(here, "artifacts");
const fail = (msg) => {
  console.error(`[report] FAIL: ${msg}`);
  process.exitCode = 1;
};

if (!fs.existsSync(report)) {
  console.error(`[report] ${report} not found: run \`make demo\` (or seedtok demo --out DIR and set REPORT)`);
  process.exit(1);
}
fs.mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const external = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    external.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(report).href, { waitUntil: "load", timeout: 60000 });
  const images = await page.$$eval("img", (imgs) =>
    imgs.map((im) => ({ alt: im.alt, ok: im.complete && im.naturalWidth > 0, inline: im.src.startsWith("data:image/") })),
  );
  const broken = images.filter((im) => !im.ok);
  const remote = images.filter((im) => !im.inline);
  console.log(`[report] ${images.length} images, ${broken.length} not loaded, ${remote.length} not inline`);
  if (images.length < 20) fail(`only ${images.length} images in the page`);
  if (broken.length) fail(`images not loaded: ${broken.map((b) => b.alt).join(", ")}`);
  if (remote.length) fail(`images not inline: ${remote.length}`);
  if (external.length) fail(`the page requested ${external.length} outside resources, e.g. ${external[0]}`);
  const text = await page.textContent("body");
  for (const needle of ["Metrics", "floor", "Parity", "Text to image", "compositional", "Codebook usage", "Out of domain"]) {
    if (!text.includes(needle)) fail(`section text missing: ${needle}`);
  }
  const verdicts = await page.$$eval("span.pass, span.fail", (els) => els.length);
  if (verdicts !== 5) fail(`expected 5 floor verdicts in the metrics table, found ${verdicts}`);
  const json = JSON.parse(fs.readFileSync(path.join(path.dirname(report), "report.json"), "utf8"));
  const keys = ["wall_seconds", "parity.ids_equal", "parity.worst"];
  for (const s of ["test", "compositional"]) {
    for (const k of ["num_images", "retrieval.i2t_r1", "retrieval.i2t_r5", "retrieval.i2t_r10", "retrieval.t2i_r1",
      "retrieval.t2i_r5", "retrieval.t2i_r10", "reconstruction.object_acc", "reconstruction.exact", "caption.exact",
      "caption.bleu4", "caption.cider", "vqa.overall", "vqa.by_type", "draw.object_acc", "draw.exact"]) keys.push(`splits.${s}.${k}`);
  }
  for (const k of keys) {
    if (k.split(".").reduce((o, p) => (o === undefined || o === null ? undefined : o[p]), json) === undefined) fail(`report.json lacks ${k}`);
  }
  await page.screenshot({ path: path.join(artifacts, "report.png"), fullPage: false });
  console.log(`[report] screenshot ${path.relative(repo, path.join(artifacts, "report.png"))}`);
} finally {
  await browser.close();
}
if (!process.exitCode) console.log("[report] PASS");
