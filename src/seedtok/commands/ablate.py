"""``seedtok ablate``: the tiny-world ablation of the paper's principles (issue 11)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from seedtok.ablate import SCALES, VARIANTS

    p = sub.add_parser("ablate", help="swap the image tokenizer (SEED, bidirectional, 2-D pixel VQ, one objective "
                                      "only), keep everything else; one table over seeds")
    p.add_argument("--data", required=True, help="shapes-world directory (seedtok data shapes)")
    p.add_argument("--out", default="ablation", help="working + output directory (re-running resumes)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all six (the five tokenizers and the oracle row)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scale", choices=sorted(SCALES), default="default", help="step counts (smoke: a few steps each)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one torch thread each")
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(a: argparse.Namespace) -> int:
    from seedtok.ablate import ablate, markdown

    summary = ablate(a.data, a.out, a.variants, tuple(a.seeds), a.scale, a.jobs, progress=not a.quiet)
    print(markdown(summary))
    inv = summary["invocation"]
    print(f"this invocation: {inv['wall_s'] / 60:.1f} min wall, {a.jobs} job(s); "
          f"wrote {a.out}/ablation.json, ablation.md, loss_curves.png, invocation.json")
    return 0
