"""``demo/report.html``: one self-contained page (every image inline as a PNG data URI)."""

from __future__ import annotations

import base64
import colorsys
import html
import io
from typing import Any, Sequence

from PIL import Image, ImageDraw

from seedtok.demo.report import ROWS, SPLITS, floor_results, get

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.pass{color:#0a7d28;font-weight:600}.fail{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:272px}
.pair{display:flex;gap:6px;align-items:flex-start}.pair figure{margin:0;text-align:center;font-size:11px;color:#666}
.px{image-rendering:pixelated;width:128px;height:128px;border:1px solid #eee}
.strip{image-rendering:pixelated;width:256px;height:12px;display:block;margin:6px 0 2px}
.ids{font:10px/1.2 monospace;color:#555;word-break:break-all}.small{font-size:12px;color:#555}
.ok{color:#0a7d28}.bad{color:#b3261e}.ood{background:#fff4e5;border:1px solid #f0c36d;padding:6px 10px;border-radius:4px}
"""


def data_uri(image: Image.Image, scale: int = 1) -> str:
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def code_colour(code: int) -> tuple[int, int, int]:
    """A stable, well-spread colour per code id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((code * 0.6180339887) % 1.0, 0.55 + 0.35 * ((code * 7) % 3) / 2, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def id_strip(ids: Sequence[int]) -> Image.Image:
    """The 32 ids as a strip of coloured cells (8 x 12 px each; scaled up in the page)."""
    img = Image.new("RGB", (8 * len(ids), 12), "white")
    draw = ImageDraw.Draw(img)
    for i, code in enumerate(ids):
        draw.rectangle([8 * i, 0, 8 * i + 7, 11], fill=code_colour(int(code)))
    return img


def usage_chart(per_position: Sequence[int], codebook_size: int, width: int = 640, height: int = 180) -> Image.Image:
    """Bars: distinct codes used at each of the 32 positions (of ``codebook_size``)."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    top = max(max(per_position, default=1), 1)
    bar = (width - 40) / max(len(per_position), 1)
    for i, n in enumerate(per_position):
        h = (height - 30) * n / top
        x0 = 30 + i * bar
        draw.rectangle([x0 + 1, height - 20 - h, x0 + bar - 2, height - 20], fill=(70, 110, 200))
        if i % 4 == 0:
            draw.text((x0 + 1, height - 16), str(i), fill=(80, 80, 80))
    draw.text((2, 2), f"max {top} of {codebook_size}", fill=(80, 80, 80))
    return img


def _img(image: Image.Image, alt: str, cls: str = "px", scale: int = 2) -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="{data_uri(image, scale)}">'


def _strip(ids: Sequence[int]) -> str:
    text = " ".join(map(str, ids))
    return (f'<img class="strip" alt="32 ids" title="{text}" src="{data_uri(id_strip(ids))}">'
            f'<div class="ids">{text}</div>')


def metrics_html(report: dict[str, Any]) -> str:
    floors = {r["key"]: r for r in floor_results(report)}
    rows = ["<tr><th>metric</th><th>test</th><th>compositional</th><th>floor (test)</th><th>result</th></tr>"]
    for key, label in ROWS:
        vals = "".join(f"<td>{get(report['splits'][s], key):.3f}</td>" for s in SPLITS)
        f = floors.get(key)
        verdict = "" if f is None else f'<span class="{"pass" if f["passed"] else "fail"}">{"PASS" if f["passed"] else "FAIL"}</span>'
        rows.append(f"<tr><td>{label}</td>{vals}<td>{'' if f is None else '&ge; %.2f' % f['floor']}</td><td>{verdict}</td></tr>")
    types = report["splits"]["test"]["vqa"]["by_type"]
    for t in types:
        vals = "".join(f"<td>{report['splits'][s]['vqa']['by_type'].get(t, float('nan')):.3f}</td>" for s in SPLITS)
        rows.append(f"<tr><td>VQA: {html.escape(t)}</td>{vals}<td></td><td></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _answers(items: list[dict[str, Any]]) -> str:
    return "".join(f'<div class="small">Q: {html.escape(a["question"])} &rarr; <b class="{"ok" if a["correct"] else "bad"}">'
                   f'{html.escape(a["answer"] or "(empty)")}</b>{"" if a["correct"] else " (true: " + html.escape(a["truth"]) + ")"}</div>'
                   for a in items)


def image_cards(ex: dict[str, Any], n: int) -> str:
    cards = []
    for i in range(min(n, len(ex["images"]))):
        gen = ex["generated"][i]
        cards.append(
            f'<div class="card"><div class="pair"><figure>{_img(ex["images"][i], "test image")}<figcaption>image</figcaption>'
            f'</figure><figure>{_img(ex["reconstructions"][i], "reconstruction")}<figcaption>32 ids &rarr; image</figcaption>'
            f'</figure></div>{_strip(ex["ids"][i])}'
            f'<div class="small">true: {html.escape(ex["captions"][i])}</div>'
            f'<div>caption: <b class="{"ok" if gen["exact"] else "bad"}">{html.escape(gen["generated"])}</b></div>'
            f'{_answers(ex["answers"][i] if i < len(ex["answers"]) else [])}</div>')
    return '<div class="grid">' + "".join(cards) + "</div>"


def drawing_cards(ex: dict[str, Any], n: int) -> str:
    cards = [f'<div class="card"><div class="small">prompt:</div><div><b>{html.escape(ex["captions"][i])}</b></div>'
             f'<div class="pair"><figure>{_img(ex["drawn"][i], "drawing")}<figcaption>LLM &rarr; 32 ids &rarr; image</figcaption>'
             f'</figure><figure>{_img(ex["images"][i], "true scene")}<figcaption>a true image</figcaption></figure></div>'
             f'{_strip(ex["drawn_codes"][i])}</div>' for i in range(min(n, len(ex["drawn"])))]
    return '<div class="grid">' + "".join(cards) + "</div>"


def photo_cards(photos: list[dict[str, Any]]) -> str:
    cards = [f'<div class="card"><div class="pair"><figure>{_img(p["image"], p["name"], scale=1)}<figcaption>{html.escape(p["name"])}'
             f'</figcaption></figure><figure>{_img(p["reconstruction"], "reconstruction")}<figcaption>32 ids &rarr; image'
             f'</figcaption></figure></div>{_strip(p["ids"])}<div>caption: {html.escape(p["caption"])}</div></div>'
             for p in photos]
    return '<div class="grid">' + "".join(cards) + "</div>"


def render_page(report: dict[str, Any], details: dict[str, Any], examples: dict[str, dict[str, Any]],
                photos: list[dict[str, Any]], n_cards: int = 12) -> str:
    par = report["parity"]
    parity = ("skipped (no golden data)" if par["ids_equal"] is None else
              f'ids equal: <b>{par["ids_equal"]}</b>, worst max|diff| over intermediates {par["worst"]:.2e}')
    usage = details["codebook"]
    model = details.get("model", {})
    passed = sum(r["passed"] for r in floor_results(report))
    body = [
        f"<h1>seedtok demo &mdash; {html.escape(str(model.get('name', 'model')))}</h1>",
        f'<div class="small">SEED (arXiv 2307.08041) in the tiny shapes world: image &rarr; 32 discrete codes &rarr; '
        f"image, captions, answers; text &rarr; 32 codes &rarr; image. Model commit {html.escape(str(model.get('git_commit')))}; "
        f"trained on data seed {html.escape(str(model.get('data_seed')))}, evaluated on fresh data seed {details['data']['seed']}. "
        f"Wall time {report['wall_seconds']:.0f} s ({details['machine']['torch_threads']} torch threads).</div>",
        f"<h2>Metrics ({passed}/{len(floor_results(report))} floors met)</h2>", metrics_html(report),
        f"<h2>Parity with the reference SEED-1 tokenizer</h2><div>{parity}</div>",
        f"<h2>Test images: 32 codes, reconstruction, caption, answers</h2>", image_cards(examples["test"], n_cards),
        "<h2>Compositional split (held-out colour-shape pairs)</h2>", image_cards(examples["compositional"], n_cards // 2),
        "<h2>Text to image: test prompts</h2>", drawing_cards(examples["test"], n_cards // 2),
        "<h2>Text to image: compositional prompts</h2>", drawing_cards(examples["compositional"], n_cards // 2),
        f"<h2>Codebook usage per position (test split)</h2><div class='small'>distinct codes at each of the 32 "
        f"positions; {usage['codes_used']} of {usage['codebook_size']} codes used, perplexity {usage['perplexity']:.0f}</div>"
        f"{_img(usage_chart(usage['per_position_used'], usage['codebook_size']), 'codebook usage', cls='chart', scale=1)}",
        "<h2>Out of domain: the bundled photos</h2><div class='ood'>These are not shapes-world images: the tiny model "
        "never saw photos, so its codes, reconstructions and captions are out of domain and shown only as such.</div>",
        photo_cards(photos),
    ]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>seedtok demo report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
