"""Request handlers of ``seedtok serve`` without a browser and without Gradio: limits,
errors shown instead of raised, timeouts, bundle loading and fallbacks."""

import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from seedtok.checkpoint import save_pretrained
from seedtok.web import render
from seedtok.web.bundle import BundleError, load_bundle, random_decoder
from seedtok.web.handlers import Handlers, Limits, RequestError

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "seedtok" / "assets" / "samples"


@pytest.fixture(scope="module")
def models():
    """Tokenizer + decoder fallbacks, no LLM (fast)."""
    return load_bundle(None, with_llm=False)


@pytest.fixture(scope="module")
def llm_models(models):
    """The same plus the shipped stand-in LM (untrained image rows); skipped without the llm extra."""
    pytest.importorskip("peft")
    full = load_bundle(None)
    if full.llm is None:
        pytest.skip(full.llm_error or "no LLM")
    return full


@pytest.fixture
def handlers(models):
    h = Handlers(models)
    yield h
    h.close()


def test_tokenize_sample(handlers, models):
    res = handlers.tokenize(SAMPLES / "chelsea.png")
    assert len(res.ids) == models.num_tokens == 32
    assert all(0 <= i < models.codebook_size for i in res.ids)
    assert res.strip_html.count('class="tok-id') == 32
    assert res.reconstruction.size[0] >= 64 and res.reconstruction.mode == "RGB"
    assert f'data-distinct="{len(set(res.ids))}"' in res.usage_html
    assert res.usage_image.size[0] == res.usage_image.size[1]


def test_bad_uploads_are_messages(tmp_path, models):
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n" * 10)
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000), (9, 9, 9)).save(big)
    h = Handlers(models, Limits(max_pixels=1_000_000, max_bytes=200_000))
    try:
        with pytest.raises(RequestError, match="not a recognised image"):
            h.tokenize(text)
        assert "megapixels exceeds the limit" in h.guard(lambda: h.tokenize(big))[1]
        assert "no image uploaded" in h.guard(lambda: h.tokenize(None))[1]
        assert "gone or unreadable" in h.guard(lambda: h.tokenize(tmp_path / "missing.png"))[1]
        small = Handlers(models, Limits(max_bytes=100))
        assert "exceeds the upload limit" in small.guard(lambda: small.tokenize(SAMPLES / "coffee.png"))[1]
        small.close()
        # Truncated image: the header passes, decoding fails -> a message, not an exception.
        trunc = tmp_path / "trunc.png"
        trunc.write_bytes((SAMPLES / "coffee.png").read_bytes()[:2000])
        res, err = h.guard(lambda: h.tokenize(trunc))
        assert res is None and "trunc.png" in err
        # ... and the handlers keep serving.
        assert len(h.tokenize(SAMPLES / "coffee.png").ids) == 32
    finally:
        h.close()


def test_guard_reports_unexpected_errors():
    def boom():
        raise KeyError("x")

    res, err = Handlers.guard(boom)
    assert res is None and err.startswith("internal error (KeyError")


def test_timeout_then_keeps_serving(models):
    h = Handlers(models, Limits(timeout_s=0.2))
    try:
        release = threading.Event()
        with pytest.raises(RequestError, match="timed out after 0.2 s"):
            h.run(release.wait, 5)
        release.set()
        time.sleep(0.05)
        assert h.run(lambda: 7) == 7
    finally:
        h.close()


def test_compare_and_shared_prefix(handlers):
    same = handlers.compare(SAMPLES / "chelsea.png", SAMPLES / "chelsea.png")
    assert same.prefix == 32 and same.ids_a == same.ids_b
    assert same.html.count("tok-shared") == 64 and 'data-prefix="32"' in same.html
    assert render.shared_prefix([1, 2, 3, 4], [1, 2, 9, 4]) == 2
    assert render.shared_prefix([], [1]) == 0
    html = render.compare_html([1, 2, 3], [1, 5, 3], 8)
    assert html.count("tok-shared") == 2 and "Same id at the same position: 2" in html
    assert "second image" in Handlers.guard(lambda: handlers.compare(SAMPLES / "chelsea.png", None))[1]


def test_llm_disabled_is_a_message(handlers):
    assert "not loaded" in handlers.guard(lambda: handlers.ask(SAMPLES / "coffee.png", "what?"))[1]
    assert "not loaded" in handlers.guard(lambda: handlers.draw("a red circle"))[1]


def test_ask_caption_draw(llm_models):
    h = Handlers(llm_models)
    try:
        assert isinstance(h.ask(SAMPLES / "coffee.png", "what color is the shape?"), str)
        assert h.caption(SAMPLES / "coffee.png")
        res = h.draw("a red circle", seed=1, steps=5, guidance=2.0)
        assert len(res.ids) == 32 and res.image.mode == "RGB" and res.strip_html.count('class="tok-id') == 32
        for kw, msg in [({"steps": 0}, "steps must be"), ({"guidance": 99}, "guidance must be"),
                        ({"seed": "x"}, "must be integers"), ({"temperature": 5}, "temperature must be")]:  # fmt: skip
            assert msg in h.guard(lambda: h.draw("a red circle", **kw))[1]
        assert "prompt: empty" in h.guard(lambda: h.draw("  \n"))[1]
        assert "question: empty" in h.guard(lambda: h.ask(SAMPLES / "coffee.png", ""))[1]
        assert "exceeds the limit" in h.guard(lambda: h.ask(SAMPLES / "coffee.png", "why " * 200))[1]
    finally:
        h.close()


def test_bundle_layouts(tmp_path, tiny_model):
    save_pretrained(tiny_model, tmp_path / "b" / "tokenizer")
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({"name": "my bundle", "description": "d"}))
    m = load_bundle(tmp_path / "b", with_llm=False)
    assert m.name == "my bundle" and m.description == "d"
    assert not any(b.startswith("Tokenizer") for b in m.banners)
    assert any(b.startswith("Decoder") for b in m.banners) or m.decoder is not None
    # A tokenizer directory itself is a bundle too.
    m2 = load_bundle(tmp_path / "b" / "tokenizer", with_llm=False)
    assert not any(b.startswith("Tokenizer") for b in m2.banners)
    # An empty directory: every part falls back, with banners.
    (tmp_path / "empty").mkdir()
    m3 = load_bundle(tmp_path / "empty", with_llm=False)
    assert any("randomly initialised 'tiny' tokenizer" in b for b in m3.banners)
    with pytest.raises(BundleError, match="no such model directory"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty" / "bundle.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path / "empty", with_llm=False)
    (tmp_path / "b" / "tokenizer" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="tokenizer"):
        load_bundle(tmp_path / "b", with_llm=False)


def test_random_decoder_shapes(tiny_model):
    dec = random_decoder(tiny_model)
    out = dec(ids=[[0] * 32])
    assert out.images[0].size == (64, 64)


def test_banner_and_status_escape_html():
    html = render.banner_html(["<b>x</b>"], "n<1>")
    assert "<b>x</b>" not in html and "&lt;b&gt;" in html and "untrained-banner" in html
    assert 'class="web-error"' in render.status_html("<script>", False) and "<script>" not in render.status_html("<script>", False)


def test_serve_parser():
    from seedtok.cli import build_parser

    a = build_parser().parse_args(["serve", "--model", "x", "--port", "9999"])
    assert a.host == "127.0.0.1" and a.port == 9999 and a.max_upload_mb == 10 and a.max_megapixels == 16
