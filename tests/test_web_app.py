"""The Gradio app of ``seedtok serve``, without a browser: it builds, binds 127.0.0.1, serves
its page and config with the elements the browser test drives. Skipped without Gradio (the
``seedtok[web]`` extra); ``make test-web`` runs the full browser test."""

import json
import socket
import urllib.request

import pytest

gr = pytest.importorskip("gradio")

from seedtok.web.app import build_app, launch  # noqa: E402
from seedtok.web.bundle import load_bundle  # noqa: E402
from seedtok.web.handlers import Handlers  # noqa: E402

ELEMENTS = ["tok-upload", "tok-strip", "tok-recon", "tok-status", "ask-upload", "ask-question", "ask-answer",
            "draw-prompt", "draw-run", "draw-image", "cmp-upload-a", "cmp-upload-b", "cmp-strips"]  # fmt: skip


@pytest.fixture(scope="module")
def handlers():
    h = Handlers(load_bundle(None, with_llm=False))
    yield h
    h.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_build_app_has_tabs_and_elements(handlers):
    app = build_app(handlers)
    ids = {getattr(b, "elem_id", None) for b in app.blocks.values()}
    assert set(ELEMENTS) <= ids
    labels = {getattr(b, "label", None) for b in app.blocks.values()}
    assert {"Tokenize", "Caption & Ask", "Draw", "Compare"} <= labels


def test_launch_serves_localhost(handlers):
    port = _free_port()
    app = launch(handlers, "127.0.0.1", port, block=False)
    try:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/", timeout=20) as r:
            assert r.status == 200
        with urllib.request.urlopen(base + "/config", timeout=20) as r:
            config = json.loads(r.read())
        text = json.dumps(config)
        assert all(e in text for e in ELEMENTS) and "untrained" in text
    finally:
        app.close()
