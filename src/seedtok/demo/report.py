"""``demo/report.json``: its stable keys, the floors, and the printed metrics table.

The keys (other tools read them; documented in ``docs/demo.md``)::

    wall_seconds
    parity.ids_equal, parity.worst
    splits.<split>.num_images                                   split: test, compositional
    splits.<split>.retrieval.{i2t,t2i}_r{1,5,10}                 from the 32 codes
    splits.<split>.reconstruction.object_acc, .exact            image -> 32 ids -> image
    splits.<split>.caption.exact, .bleu4, .cider
    splits.<split>.vqa.overall, splits.<split>.vqa.by_type.<type>
    splits.<split>.draw.object_acc, .exact                      text -> 32 ids -> image

``object_acc`` is the scene parser's per-object colour + shape accuracy (objects paired by grid
cell); ``exact`` the share of images whose parsed scene (or caption) is exactly the true one.
Nothing else goes into report.json; everything else the report page shows is in details.json.
"""

from __future__ import annotations

from typing import Any, Iterable

SPLITS = ("test", "compositional")
RETRIEVAL_KEYS = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in (1, 5, 10))
# The floors of the two "tiny world learns" issues, on the fresh test split: (key, minimum, label).
FLOORS = (
    ("retrieval.i2t_r1", 0.80, "retrieval i2t R@1 (codes)"),
    ("reconstruction.object_acc", 0.80, "reconstruction per-object"),
    ("caption.exact", 0.60, "caption exact scene"),
    ("vqa.overall", 0.70, "VQA overall"),
    ("draw.object_acc", 0.60, "draw per-object"),
)
# Rows of the printed table: (key, label).
ROWS = (
    ("retrieval.i2t_r1", "retrieval i2t R@1 (codes)"), ("retrieval.t2i_r1", "retrieval t2i R@1 (codes)"),
    ("reconstruction.object_acc", "reconstruction per-object"), ("reconstruction.exact", "reconstruction exact"),
    ("caption.exact", "caption exact scene"), ("caption.bleu4", "caption BLEU-4"), ("caption.cider", "caption CIDEr"),
    ("vqa.overall", "VQA overall"), ("draw.object_acc", "draw per-object"), ("draw.exact", "draw exact"),
)


def split_entry(num_images: int, retrieval: dict[str, Any], recon: dict[str, Any], caption: dict[str, Any],
                vqa: dict[str, Any], draw: dict[str, Any]) -> dict[str, Any]:
    """One split's report.json entry from the :mod:`seedtok.eval` results."""
    return {
        "num_images": int(num_images),
        "retrieval": {k: float(retrieval[k]) for k in RETRIEVAL_KEYS},
        "reconstruction": {"object_acc": float(recon["color_shape"]), "exact": float(recon["exact"])},
        "caption": {"exact": float(caption["exact_scene_match"]), "bleu4": float(caption["bleu4"]),
                    "cider": float(caption["cider"])},
        "vqa": {"overall": float(vqa["accuracy"]), "by_type": {t: float(v["accuracy"]) for t, v in vqa["per_type"].items()}},
        "draw": {"object_acc": float(draw["color_shape"]), "exact": float(draw["exact_scene_match"])},
    }


def required_keys(vqa_types: Iterable[str] = ("color", "count", "exist", "position", "shape")) -> list[str]:
    """Every dotted key report.json must hold."""
    keys = ["wall_seconds", "parity.ids_equal", "parity.worst"]
    for s in SPLITS:
        p = f"splits.{s}"
        keys += [f"{p}.num_images", *(f"{p}.retrieval.{k}" for k in RETRIEVAL_KEYS),
                 f"{p}.reconstruction.object_acc", f"{p}.reconstruction.exact",
                 f"{p}.caption.exact", f"{p}.caption.bleu4", f"{p}.caption.cider", f"{p}.vqa.overall",
                 *(f"{p}.vqa.by_type.{t}" for t in vqa_types), f"{p}.draw.object_acc", f"{p}.draw.exact"]
    return keys


def get(report: dict[str, Any], dotted: str) -> Any:
    node: Any = report
    for part in dotted.split("."):
        node = node[part]
    return node


def missing_keys(report: dict[str, Any]) -> list[str]:
    out = []
    for key in required_keys():
        try:
            get(report, key)
        except (KeyError, TypeError):
            out.append(key)
    return out


def floor_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each floor on the test split: value, minimum, passed."""
    test = report["splits"]["test"]
    return [{"key": k, "label": label, "floor": floor, "value": get(test, k), "passed": get(test, k) >= floor}
            for k, floor, label in FLOORS]


def headline(report: dict[str, Any]) -> dict[str, float]:
    """Flat ``split.key`` -> value of the table's rows (what a release records)."""
    return {f"{s}.{k}": get(report["splits"][s], k) for s in SPLITS for k, _ in ROWS if s in report.get("splits", {})}


def metrics_table(report: dict[str, Any]) -> str:
    """The printed table: both splits, the floor (test split) and pass/fail."""
    floors = {k: f for k, f, _ in FLOORS}
    lines = [f"{'metric':<28} {'test':>8} {'compos.':>8} {'floor':>7}  result",
             f"{'-' * 28} {'-' * 8} {'-' * 8} {'-' * 7}  ------"]
    for key, label in ROWS:
        t, c = get(report["splits"]["test"], key), get(report["splits"]["compositional"], key)
        f = floors.get(key)
        verdict = "" if f is None else ("PASS" if t >= f else "FAIL")
        lines.append(f"{label:<28} {t:>8.3f} {c:>8.3f} {'' if f is None else f'>={f:.2f}':>7}  {verdict}")
    by_type = report["splits"]["test"]["vqa"]["by_type"]
    lines.append("VQA by type (test): " + ", ".join(f"{t} {v:.3f}" for t, v in by_type.items()))
    n = {s: report["splits"][s]["num_images"] for s in SPLITS}
    par = report["parity"]
    parity = "skipped" if par["ids_equal"] is None else f"ids equal {par['ids_equal']}, worst |diff| {par['worst']:.1e}"
    lines.append(f"images: test {n['test']}, compositional {n['compositional']}; parity: {parity}")
    passed = sum(r["passed"] for r in floor_results(report))
    lines.append(f"floors met: {passed}/{len(FLOORS)}")
    return "\n".join(lines)
