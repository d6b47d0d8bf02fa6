"""The ablation's table: headline numbers of a run, mean and spread over seeds, the no-image
control, Markdown and the loss-curve plot."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from seedtok.ablate.variants import COMPARISONS, HEADLINE, VARIANTS


def blind_baselines(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, Any]:
    """What needs no image at all, on the same test images: VQA answered with the training
    split's most frequent answer to the same question (else to its type), and one constant
    caption (the most frequent training caption) scored like the LLM's. A variant the LLM
    cannot beat these with has not been read."""
    from collections import Counter

    from seedtok.data.shapes import Scene, parse_caption, scene_match
    from seedtok.eval.llm import coco_scores, scene_references

    by_question: dict[str, Counter] = {}
    by_type: dict[str, Counter] = {}
    for r in train:
        for qa in r["vqa"]:
            by_question.setdefault(qa["question"], Counter())[qa["answer"]] += 1
            by_type.setdefault(qa["type"], Counter())[qa["answer"]] += 1
    per_type: dict[str, list[bool]] = {}
    for r in test:
        for qa in r["vqa"]:
            prior = by_question.get(qa["question"]) or by_type.get(qa["type"]) or Counter({"": 1})
            per_type.setdefault(qa["type"], []).append(prior.most_common(1)[0][0] == qa["answer"])
    right = [x for v in per_type.values() for x in v]
    constant = Counter(r["caption"] for r in train).most_common(1)[0][0]
    scenes = [Scene.from_dict(r["scene"]) for r in test]
    exact = [scene_match(parse_caption(constant), s) for s in scenes]
    return {"vqa_accuracy": sum(right) / max(len(right), 1), "caption": constant,
            "vqa_per_type": {t: sum(v) / len(v) for t, v in sorted(per_type.items())},
            "caption_cider": coco_scores([constant] * len(test), scene_references(scenes))["cider"] if test else None,
            "caption_exact": sum(exact) / max(len(exact), 1)}


def flatten(result: dict[str, Any]) -> dict[str, float | None]:
    """A run's result -> the headline numbers of :data:`HEADLINE`."""
    tokm, llm = result["tokenizer"], result["llm"]
    codes = (tokm.get("retrieval") or {}).get("codes") or {}
    cb = tokm.get("codebook") or {}
    curves = llm["curves"]

    def tail(key: str) -> float | None:
        vals = [v for v in curves.get(key, [])[-1:] if math.isfinite(v)]
        return vals[0] if vals else None

    return {
        "retrieval_i2t_r1_codes": codes.get("i2t_r1"),
        "reconstruction_color_shape": (tokm.get("reconstruction") or {}).get("color_shape"),
        "caption_exact": llm["caption"]["exact_scene_match"],
        "caption_cider": llm["caption"]["cider"],
        "vqa_accuracy": llm["vqa"]["accuracy"],
        "t2i_color_shape": llm["draw"]["color_shape"],
        "t2i_exact": llm["draw"]["exact_scene_match"],
        "llm_image_loss": tail("image_loss"),
        "llm_text_loss": tail("text_loss"),
        "code_entropy": llm.get("code_entropy"),
        "image_nats_from_text": None if llm.get("code_entropy") is None or tail("image_loss") is None
        else llm["code_entropy"] - tail("image_loss"),
        "codebook_used_pct": cb.get("codes_used_pct"),
        "codebook_perplexity": cb.get("perplexity"),
    }


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def summarise(results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every headline number, per variant."""
    table: dict[str, Any] = {}
    for name, variant in VARIANTS.items():
        runs = [r for r in results if r["variant"]["name"] == name]
        if not runs:
            continue
        types = sorted({t for r in runs for t in r["llm"]["vqa"]["per_type"]})
        table[name] = {"title": variant.title, "claim": variant.claim, "seeds": sorted(r["seed"] for r in runs),
                       **{key: _stats([flatten(r)[key] for r in runs]) for key, _ in HEADLINE},
                       "vqa_per_type": {t: _stats([r["llm"]["vqa"]["per_type"].get(t, {}).get("accuracy") for r in runs])
                                        for t in types}}
    return {**meta, "table": table, "significance": significance(table)}


def significance(table: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """For each comparison of :data:`COMPARISONS` present in ``table``: the headline numbers
    (and per-type VQA accuracies) whose difference of means exceeds twice the larger of the two
    rows' sample standard deviations over seeds. A rough screen for 3 seeds, not a test: a
    difference inside it is not shown to exist."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in COMPARISONS:
        if a not in table or b not in table:
            continue
        pairs = [(k, table[a][k], table[b][k]) for k, _ in HEADLINE]
        pairs += [(f"vqa_{t}", s, table[b]["vqa_per_type"].get(t, {"mean": None})) for t, s in table[a]["vqa_per_type"].items()]
        found = {}
        for key, x, y in pairs:
            if x["mean"] is None or y["mean"] is None or min(x["n"], y["n"]) < 2:
                continue
            diff, bound = x["mean"] - y["mean"], 2 * max(x["std"], y["std"])
            if abs(diff) > bound:
                found[key] = {"diff": diff, "two_std": bound}
        out[f"{a} vs {b}"] = found
    return out


def _fmt(s: dict[str, float | None], key: str) -> str:
    if s["mean"] is None:
        return "n/a"
    digits = 1 if key.startswith("codebook") or key == "caption_cider" and s["mean"] >= 10 else 3
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    cols = [label for _, label in HEADLINE]
    lines = ["| variant | claim | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, row in summary["table"].items():
        lines.append(f"| `{name}` | {row['claim']} | " + " | ".join(_fmt(row[k], k) for k, _ in HEADLINE) + " |")
    blind = summary.get("blind")
    if blind:
        cells = {"caption_exact": blind["caption_exact"], "caption_cider": blind["caption_cider"],
                 "vqa_accuracy": blind["vqa_accuracy"]}
        lines.append("| no image (priors) | control | " + " | ".join(
            "n/a" if k not in cells else f"{cells[k]:.3f}" for k, _ in HEADLINE) + " |")
    n = max((len(r["seeds"]) for r in summary["table"].values()), default=0)
    types = sorted({t for r in summary["table"].values() for t in r.get("vqa_per_type", {})})
    if types:
        lines += ["", "VQA accuracy by question type:", "",
                  "| variant | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
        for name, row in summary["table"].items():
            lines.append(f"| `{name}` | " + " | ".join(_fmt(row["vqa_per_type"].get(t, {"mean": None}), t) for t in types) + " |")
        if blind and blind.get("vqa_per_type"):
            lines.append("| no image (priors) | " + " | ".join(f"{blind['vqa_per_type'].get(t, float('nan')):.3f}" for t in types) + " |")
    labels = {k: label for k, label in HEADLINE}
    if summary.get("significance"):
        lines += ["", "Differences of means that exceed 2 std (the larger sample std of the two rows; a rough screen "
                  "over the seeds, not a test):", ""]
        for pair, found in summary["significance"].items():
            cells = [f"{labels.get(k, k.replace('vqa_', 'VQA '))} {v['diff']:+.3f} (2 std {v['two_std']:.3f})"
                     for k, v in found.items()]
            lines.append(f"- {pair}: " + ("; ".join(cells) if cells else "none"))
    lines.append("")
    runs, stage1 = summary.get("run_wall_s", {}), summary.get("stage1_wall_s", {})
    lines.append(f"Mean ± sample std over {n} seed(s); scale `{summary['scale_name']}` ({summary['scale']}). "
                 f"The runs took {(sum(runs.values()) + sum(stage1.values())) / 60:.1f} job-minutes of one thread each "
                 f"({len(stage1)} stage-1 runs, {len(runs)} variant runs).")
    lines.append(f"Reproduce: `{summary['command']}`")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Stage-3 training loss on image tokens (text-to-image targets) and on text, mean over
    seeds per variant (moving mean of 25 steps); dashed: each variant's code entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in VARIANTS:
        runs = [r["llm"]["curves"] for r in results if r["variant"]["name"] == name]
        if not runs:
            continue
        n = min(len(c["step"]) for c in runs)
        for ax, key in zip(axes, ("image_loss", "text_loss")):
            ys = [statistics.fmean([c[key][i] for c in runs if math.isfinite(c[key][i])] or [float("nan")]) for i in range(n)]
            line, = ax.plot(runs[0]["step"][:n], ys, label=name)
            entropies = [r["llm"].get("code_entropy") for r in results if r["variant"]["name"] == name]
            if key == "image_loss" and all(e is not None for e in entropies):
                ax.axhline(statistics.fmean(entropies), color=line.get_color(), linestyle="--", linewidth=0.8)
    for ax, title in zip(axes, ("LLM loss on image tokens (dashed: code entropy)", "LLM loss on text (caption, VQA)")):
        ax.set_title(title)
        ax.set_xlabel("stage-3 step")
        ax.set_ylabel("cross-entropy (nats)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
