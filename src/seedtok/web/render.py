"""HTML and small images for the web demo: token strips, codebook usage, shared prefixes.

Every function returns a self-contained HTML fragment with inline styles (no CSS file, no
scripts). Cells carry stable class names (``tok-id``, ``tok-shared``) the browser test reads.
"""

from __future__ import annotations

import colorsys
import html
from typing import Sequence

from PIL import Image

CELL = (
    "display:inline-flex;align-items:center;justify-content:center;min-width:2.6em;height:2.2em;"
    "margin:1px;border-radius:4px;font:12px/1 monospace;color:#111;"
)


def id_color(code: int, codebook_size: int) -> str:
    """A stable pastel colour per code (golden-ratio hue walk, so neighbours differ)."""
    hue = (code * 0.6180339887) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.78, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def token_strip(ids: Sequence[int], codebook_size: int, shared: int = 0, label: str = "") -> str:
    """One row of ``len(ids)`` cells, each showing its position (tooltip) and id; the first
    ``shared`` cells are outlined as the shared prefix."""
    cells = []
    for pos, code in enumerate(ids):
        in_prefix = pos < shared
        cls = "tok-id tok-shared" if in_prefix else "tok-id"
        border = "outline:3px solid #d62728;" if in_prefix else "outline:1px solid #999;"
        cells.append(
            f'<span class="{cls}" data-pos="{pos}" data-id="{int(code)}" title="position {pos}: id {int(code)}" '
            f'style="{CELL}background:{id_color(int(code), codebook_size)};{border}">{int(code)}</span>'
        )
    head = f'<div style="font:600 13px sans-serif;margin:4px 0">{html.escape(label)}</div>' if label else ""
    return f'<div class="tok-strip" data-count="{len(ids)}">{head}<div style="line-height:2.6em">{"".join(cells)}</div></div>'


def usage_summary(ids: Sequence[int], codebook_size: int) -> str:
    """Codebook usage of one image: distinct codes, repeats, and the most repeated ids."""
    counts: dict[int, int] = {}
    for code in ids:
        counts[int(code)] = counts.get(int(code), 0) + 1
    distinct = len(counts)
    repeats = sorted(((c, k) for k, c in counts.items() if c > 1), reverse=True)[:6]
    rep = ", ".join(f"{k}&times;{c}" for c, k in repeats) or "none"
    pct = 100.0 * distinct / max(codebook_size, 1)
    return (
        f'<div class="tok-usage" data-distinct="{distinct}" style="font:13px sans-serif">'
        f"<b>{len(ids)}</b> tokens, <b>{distinct}</b> distinct codes of a codebook of {codebook_size} "
        f"({pct:.1f}% of the codebook). Repeated ids: {rep}.</div>"
    )


def usage_map(ids: Sequence[int], codebook_size: int, cell: int = 6) -> Image.Image:
    """The codebook as a square grid, one cell per code: grey unused, red used (darker with
    more uses). Makes "which slice of the codebook does this image use" visible."""
    side = max(1, int(-(-codebook_size**0.5 // 1)))
    img = Image.new("RGB", (side * cell, side * cell), (235, 235, 235))
    counts: dict[int, int] = {}
    for code in ids:
        counts[int(code)] = counts.get(int(code), 0) + 1
    px = img.load()
    for code in range(codebook_size):
        y, x = divmod(code, side)
        n = counts.get(code, 0)
        colour = (205, 205, 205) if n == 0 else (max(120, 250 - 20 * (n - 1)), 30, 30)
        for dy in range(cell - 1):
            for dx in range(cell - 1):
                px[x * cell + dx, y * cell + dy] = colour
    return img


def compare_html(a: Sequence[int], b: Sequence[int], codebook_size: int, names: tuple[str, str] = ("A", "B")) -> str:
    """Two strips, one above the other, the shared prefix outlined, plus a summary line."""
    k = shared_prefix(a, b)
    same = sum(int(x == y) for x, y in zip(a, b))
    common = len(set(map(int, a)) & set(map(int, b)))
    summary = (
        f'<div class="tok-compare" data-prefix="{k}" style="font:13px sans-serif;margin:6px 0">'
        f"Shared prefix: <b>{k}</b> of {len(a)} tokens. Same id at the same position: {same}. "
        f"Ids in common (any position): {common}. The tokens are causal: position i depends only "
        f"on positions &lt; i, so images that agree early share a prefix.</div>"
    )
    return summary + token_strip(a, codebook_size, k, names[0]) + token_strip(b, codebook_size, k, names[1])


def banner_html(banners: Sequence[str], name: str, description: str = "") -> str:
    """The header: bundle name and one warning line per untrained/fallback part."""
    parts = [f'<div style="font:600 18px sans-serif">seedtok demo &mdash; {html.escape(name)}</div>']
    if description:
        parts.append(f'<div style="font:13px sans-serif">{html.escape(description)}</div>')
    for text in banners:
        parts.append(
            '<div class="untrained-banner" style="background:#fff3cd;color:#5c4400;border:1px solid #e0c36a;'
            f'border-radius:4px;padding:4px 8px;margin:3px 0;font:13px sans-serif">&#9888; {html.escape(text)}</div>'
        )
    return "".join(parts)


def status_html(message: str, ok: bool) -> str:
    """A one-line status: green for success, red (class ``web-error``) for a failure."""
    if ok:
        return f'<div class="web-ok" style="color:#1a6b1a;font:13px sans-serif">{html.escape(message)}</div>'
    return (
        '<div class="web-error" role="alert" style="color:#a40000;background:#fdecea;border:1px solid #f5c2c0;'
        f'border-radius:4px;padding:4px 8px;font:13px sans-serif">Error: {html.escape(message)}</div>'
    )
