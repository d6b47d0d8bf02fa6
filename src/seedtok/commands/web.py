"""``seedtok serve``: the local web demo (issue 10; needs the ``seedtok[web]`` extra)."""

from __future__ import annotations

import argparse
import sys


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from seedtok.config import PRESETS
    from seedtok.web.handlers import Limits

    d = Limits()
    p = sub.add_parser("serve", help="web demo: tokenize, reconstruct, caption, ask, draw, compare (Gradio)")
    p.add_argument("--model", help="bundle directory (tokenizer/, decoder/, llm/; see docs/web.md), or a tokenizer "
                   "directory; missing parts fall back to untrained stand-ins, with a banner saying so "
                   "(default: the shipped trained tiny model)")  # fmt: skip
    p.add_argument("--stand-ins", action="store_true", help="no trained model at all: random tokenizer, untrained "
                   "image-token rows (plumbing only)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="random tokenizer when the bundle has none")
    p.add_argument("--seed", type=int, default=0, help="seed of random fallback weights")
    p.add_argument("--no-llm", action="store_true", help="do not load the LLM (Caption & Ask and Draw disabled)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_bytes / 1e6, help="upload size limit (MB)")
    p.add_argument("--max-megapixels", type=float, default=d.max_pixels / 1e6, help="image size limit (megapixels)")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds per request before it is reported as failed")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=cmd_serve)


def cmd_serve(a: argparse.Namespace) -> int:
    from seedtok.web.bundle import load_bundle
    from seedtok.web.handlers import Handlers, Limits

    try:
        import gradio  # noqa: F401
    except ImportError:
        print("seedtok serve: the web demo needs Gradio: pip install 'seedtok[web]'", file=sys.stderr)
        return 1
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"seedtok serve: warning: binding {a.host}: the demo has no authentication", file=sys.stderr)
    limits = Limits(max_bytes=int(a.max_upload_mb * 1e6), max_pixels=int(a.max_megapixels * 1e6), timeout_s=a.timeout)
    model = a.model
    if model is None and not a.stand_ins:
        from seedtok.release import SHIPPED_DIR, announce, verify_release

        verify_release()
        announce("tokenizer + de-tokenizer + LLM")
        model = str(SHIPPED_DIR)
    models = load_bundle(model, a.preset, a.seed, with_llm=not a.no_llm)
    for line in models.banners:
        print(f"seedtok serve: {line}", file=sys.stderr)
    from seedtok.web.app import launch

    launch(Handlers(models, limits), a.host, a.port)
    return 0
