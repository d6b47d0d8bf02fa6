"""The Gradio app of ``seedtok serve`` (needs the ``seedtok[web]`` extra).

Four tabs over :class:`~seedtok.web.handlers.Handlers`: Tokenize, Caption & Ask, Draw and
Compare. Every callback goes through :meth:`Handlers.guard`, so a failing request fills the
tab's status line (class ``web-error``) and the server keeps serving. Elements carry stable
``elem_id``s (``tok-upload``, ``tok-strip``, ...) that ``tests/web/e2e.mjs`` drives.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from seedtok.web import render
from seedtok.web.handlers import Handlers

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home; set before import

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
CSS = """
.web-error { font-weight: 600; }
#banner { margin-bottom: 4px; }
"""


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SystemExit(f"seedtok serve needs the web extra: pip install 'seedtok[web]' ({exc})") from None
    return gr


def _theme(gr: Any) -> Any:
    """System fonts only: the default theme pulls Google Fonts, which an offline page lacks."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _style_kwargs(gr: Any, target: Any) -> dict[str, Any]:
    """theme/css go to ``Blocks()`` in Gradio 5 and to ``launch()`` in Gradio 6."""
    params = inspect.signature(target).parameters
    return {k: v for k, v in {"theme": _theme(gr), "css": CSS}.items() if k in params}


def _ok(msg: str) -> str:
    return render.status_html(msg, True)


def _err(msg: str) -> str:
    return render.status_html(msg, False)


def build_app(handlers: Handlers) -> Any:
    """The ``gr.Blocks`` of the demo (not launched)."""
    gr = _gradio()
    m = handlers.models
    samples = sorted(str(p) for p in SAMPLES.glob("*.png"))
    img = dict(type="pil", format="png", interactive=False)
    with gr.Blocks(title="seedtok demo", **_style_kwargs(gr, gr.Blocks.__init__)) as app:
        gr.HTML(render.banner_html(m.banners, m.name, m.description), elem_id="banner")
        with gr.Tab("Tokenize", id="tab-tokenize"):
            gr.Markdown(
                f"Upload an image: the tokenizer turns it into **{m.num_tokens} causal ids** from a codebook of "
                f"{m.codebook_size}; the de-tokenizer draws the ids back into an image."
            )
            with gr.Row():
                with gr.Column():
                    tok_file = gr.File(label="Image", type="filepath", elem_id="tok-upload")
                    if samples:
                        gr.Examples([[s] for s in samples], inputs=[tok_file], label="Samples")
                tok_orig = gr.Image(label="Input", elem_id="tok-original", **img)
                tok_recon = gr.Image(label="Reconstruction from the 32 ids", elem_id="tok-recon", **img)
            tok_status = gr.HTML(elem_id="tok-status")
            tok_strip = gr.HTML(elem_id="tok-strip")
            with gr.Row():
                tok_usage = gr.HTML(elem_id="tok-usage")
                tok_map = gr.Image(label="Codebook usage of this image (one cell per code)", elem_id="tok-map", **img)
            tok_ids = gr.Textbox(label="ids", elem_id="tok-ids", interactive=False)

        with gr.Tab("Caption & Ask", id="tab-ask"):
            with gr.Row():
                with gr.Column():
                    ask_file = gr.File(label="Image", type="filepath", elem_id="ask-upload")
                    ask_preview = gr.Image(label="Input", elem_id="ask-preview", height=160, **img)
                with gr.Column():
                    ask_q = gr.Textbox(label="Question", value="what color is the shape?", elem_id="ask-question")
                    with gr.Row():
                        ask_btn = gr.Button("Ask", variant="primary", elem_id="ask-run")
                        cap_btn = gr.Button("Caption", elem_id="caption-run")
                    ask_answer = gr.Textbox(label="Answer", elem_id="ask-answer", interactive=False)
                    cap_text = gr.Textbox(label="Caption", elem_id="caption-text", interactive=False)
            ask_status = gr.HTML(elem_id="ask-status")

        with gr.Tab("Draw", id="tab-draw"):
            dec = m.decoder
            with gr.Row():
                with gr.Column():
                    draw_prompt = gr.Textbox(label="Prompt", value="a red circle at the top left", elem_id="draw-prompt")
                    draw_seed = gr.Number(label="Seed", value=0, precision=0, elem_id="draw-seed")
                    draw_steps = gr.Slider(1, handlers.limits.max_steps, value=min(dec.defaults.num_inference_steps, handlers.limits.max_steps),
                                           step=1, label="Steps (diffusion decoders)", elem_id="draw-steps")  # fmt: skip
                    draw_guid = gr.Slider(0.0, handlers.limits.max_guidance, value=float(dec.defaults.guidance_scale), step=0.5,
                                          label="Guidance", elem_id="draw-guidance")  # fmt: skip
                    draw_temp = gr.Slider(0.0, 2.0, value=0.0, step=0.1, label="Temperature (0 = greedy)", elem_id="draw-temperature")
                    draw_btn = gr.Button("Draw", variant="primary", elem_id="draw-run")
                draw_img = gr.Image(label="Drawn image", elem_id="draw-image", **img)
            draw_status = gr.HTML(elem_id="draw-status")
            draw_strip = gr.HTML(elem_id="draw-strip")

        with gr.Tab("Compare", id="tab-compare"):
            gr.Markdown("Two images' token sequences side by side; the shared prefix is outlined in red.")
            with gr.Row():
                cmp_a = gr.File(label="Image A", type="filepath", elem_id="cmp-upload-a")
                cmp_b = gr.File(label="Image B", type="filepath", elem_id="cmp-upload-b")
                cmp_btn = gr.Button("Compare", variant="primary", elem_id="cmp-run")
            cmp_status = gr.HTML(elem_id="cmp-status")
            cmp_html = gr.HTML(elem_id="cmp-strips")

        # -- callbacks --------------------------------------------------------------------
        def on_tokenize(path: str | None):
            if not path:
                return None, None, "", "", "", None, ""
            res, err = handlers.guard(lambda: handlers.tokenize(path))
            if err:
                return None, None, _err(err), "", "", None, ""
            ids = " ".join(map(str, res.ids))
            return (res.original, res.reconstruction, _ok(f"{len(res.ids)} ids"), res.strip_html,
                    res.usage_html, res.usage_image, ids)  # fmt: skip

        def on_preview(path: str | None):
            if not path:
                return None, ""
            res, err = handlers.guard(lambda: handlers.read_upload(path))
            return (res, "") if err is None else (None, _err(err))

        def on_ask(path: str | None, question: str):
            res, err = handlers.guard(lambda: handlers.ask(path, question))
            return (res, _ok("answered")) if err is None else ("", _err(err))

        def on_caption(path: str | None):
            res, err = handlers.guard(lambda: handlers.caption(path))
            return (res, _ok("captioned")) if err is None else ("", _err(err))

        def on_draw(prompt: str, seed: Any, steps: Any, guidance: Any, temperature: Any):
            res, err = handlers.guard(lambda: handlers.draw(prompt, seed, steps, guidance, temperature))
            if err:
                return None, _err(err), ""
            return res.image, _ok(f"drew {len(res.ids)} ids ({res.note})"), res.strip_html

        def on_compare(a: str | None, b: str | None):
            res, err = handlers.guard(lambda: handlers.compare(a, b))
            if err:
                return _err(err), ""
            return _ok(f"shared prefix: {res.prefix} of {len(res.ids_a)}"), res.html

        tok_file.change(on_tokenize, [tok_file], [tok_orig, tok_recon, tok_status, tok_strip, tok_usage, tok_map, tok_ids])
        ask_file.change(on_preview, [ask_file], [ask_preview, ask_status])
        ask_btn.click(on_ask, [ask_file, ask_q], [ask_answer, ask_status])
        ask_q.submit(on_ask, [ask_file, ask_q], [ask_answer, ask_status])
        cap_btn.click(on_caption, [ask_file], [cap_text, ask_status])
        draw_btn.click(on_draw, [draw_prompt, draw_seed, draw_steps, draw_guid, draw_temp], [draw_img, draw_status, draw_strip])
        cmp_btn.click(on_compare, [cmp_a, cmp_b], [cmp_status, cmp_html])
    return app


def launch(handlers: Handlers, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Queue (one request at a time) and serve. Gradio's own upload cap sits a little above
    the handlers' byte limit, so files just over it still get the friendlier message."""
    gr = _gradio()
    app = build_app(handlers)
    app.queue(default_concurrency_limit=1, max_size=32)
    kwargs = dict(server_name=host, server_port=port, share=False, show_error=True, quiet=False,
                  max_file_size=handlers.limits.max_bytes * 2, prevent_thread_lock=not block)  # fmt: skip
    kwargs.update(_style_kwargs(gr, app.launch))
    app.launch(**kwargs)
    return app
