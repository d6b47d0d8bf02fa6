"""``seedtok model package|verify|info``: the shipped trained tiny model (:mod:`seedtok.release`)."""

from __future__ import annotations

import argparse
import json


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="the shipped trained tiny model: package run dirs into it, verify, info")
    msub = p.add_subparsers(dest="model_command", metavar="WHAT")
    msub.required = True
    k = msub.add_parser("package", help="stage-2 run + stage-3 run -> shipped model directory (re-ship in one command)")
    k.add_argument("--tokenizer", required=True, help="stage-2 run directory (model.safetensors, reconstruction.safetensors)")
    k.add_argument("--llm", required=True, help="stage-3 run directory (`seedtok train llm --out`)")
    k.add_argument("--out", help="target directory (default: the package's assets/models/seed-tiny)")
    k.add_argument("--data", help="the training shapes-world directory (its seed and size go into the provenance)")
    k.add_argument("--report", help="a `seedtok demo` report.json whose figures the model is released with")
    k.add_argument("--command", action="append", default=[], help="a command that built the runs (repeatable)")
    k.set_defaults(func=cmd_package)
    v = msub.add_parser("verify", help="check every shipped file against its sha256")
    v.add_argument("dir", nargs="?", help="model directory (default: the shipped one)")
    v.set_defaults(func=cmd_verify)
    r = msub.add_parser("add-report", help="record a demo report's figures in a model's provenance (weights untouched)")
    r.add_argument("report", help="report.json from `seedtok demo`")
    r.add_argument("--dir", help="model directory (default: the shipped one)")
    r.set_defaults(func=cmd_add_report)


def cmd_package(a: argparse.Namespace) -> int:
    from seedtok.release import SHIPPED_DIR, package_release

    prov = package_release(a.tokenizer, a.llm, a.out, a.command, a.data, a.report)
    print(f"packaged {a.tokenizer} + {a.llm} -> {a.out or SHIPPED_DIR}")
    print(json.dumps({k: prov[k] for k in ("git_commit", "stages", "sha256")}, indent=2))
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from seedtok.release import SHIPPED_DIR, verify_release

    prov = verify_release(a.dir)
    print(f"OK: {len(prov.get('sha256', {}))} files match their sha256 ({a.dir or SHIPPED_DIR})")
    return 0


def cmd_add_report(a: argparse.Namespace) -> int:
    from seedtok.release import add_report

    prov = add_report(a.report, a.dir)
    print(json.dumps(prov["bench"], indent=2))
    return 0
