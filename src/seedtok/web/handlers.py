"""Request handlers of the web demo, in plain Python (no Gradio): testable without a browser.

Every handler validates its inputs against :class:`Limits` before any model runs (file size
from the file system, pixel count from the image header — never decoding an oversized image),
runs the model work on one worker thread with a timeout, and raises :class:`RequestError`
with a message meant for the page. :meth:`Handlers.guard` turns any exception into such a
message, so one failing request never takes the server down.
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from PIL import Image

from seedtok.image import ImageError, load_image, normalize
from seedtok.textinput import TextError, clean_text
from seedtok.web import render
from seedtok.web.bundle import WebModels

log = logging.getLogger(__name__)
T = TypeVar("T")
DISPLAY = 256  # images are shown upscaled to this many pixels (nearest: the real pixels stay visible)


class RequestError(ValueError):
    """A request the demo refuses or cannot serve; the message is shown in the page."""


@dataclass(frozen=True)
class Limits:
    """Per-request limits. ``max_pixels`` is checked from the header, before decoding."""

    max_bytes: int = 10_000_000
    max_pixels: int = 16_000_000
    timeout_s: float = 120.0
    max_text_chars: int = 300
    max_steps: int = 100
    max_guidance: float = 20.0


@dataclass
class TokenizeResult:
    ids: list[int]
    original: Image.Image
    reconstruction: Image.Image
    strip_html: str
    usage_html: str
    usage_image: Image.Image


@dataclass
class DrawResult:
    ids: list[int]
    image: Image.Image
    strip_html: str
    note: str


@dataclass
class CompareResult:
    ids_a: list[int]
    ids_b: list[int]
    prefix: int
    html: str


def display(img: Image.Image, size: int = DISPLAY) -> Image.Image:
    """Upscale small model outputs for the page (nearest neighbour); large images untouched."""
    if max(img.size) >= size:
        return img
    scale = max(1, size // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


class Handlers:
    """The demo's request handlers over models loaded once (:func:`~seedtok.web.bundle.load_bundle`)."""

    def __init__(self, models: WebModels, limits: Limits = Limits()) -> None:
        self.models, self.limits = models, limits
        # One worker: models are not re-entrant, and a timed-out request cannot be killed
        # (torch holds the thread), so later requests queue behind it rather than overlap.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedtok-model")

    # -- plumbing -----------------------------------------------------------------------------
    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model thread, under ``torch.no_grad``, within the timeout."""

        def task() -> T:
            with torch.no_grad():
                return fn(*args)

        future = self._pool.submit(task)
        try:
            return future.result(timeout=self.limits.timeout_s)
        except FutureTimeout:
            raise RequestError(f"the request timed out after {self.limits.timeout_s:g} s") from None

    @staticmethod
    def guard(fn: Callable[[], T]) -> tuple[T | None, str | None]:
        """(result, None) or (None, message for the page). Never raises."""
        try:
            return fn(), None
        except (RequestError, ImageError, TextError) as exc:
            return None, str(exc)
        except Exception as exc:  # anything else: log it, report it, keep serving
            log.exception("request failed")
            return None, f"internal error ({type(exc).__name__}: {exc})"

    def read_upload(self, path: str | os.PathLike | None, what: str = "image") -> Image.Image:
        """An uploaded file -> RGB image, after the byte and pixel limits."""
        if path is None or str(path) == "":
            raise RequestError(f"no {what} uploaded")
        p = Path(path)
        name = p.name
        try:
            size = p.stat().st_size
        except OSError:
            raise RequestError(f"{name}: the upload is gone or unreadable") from None
        lim = self.limits
        if size > lim.max_bytes:
            raise RequestError(f"{name}: {size / 1e6:.1f} MB exceeds the upload limit of {lim.max_bytes / 1e6:.1f} MB")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(p) as probe:  # reads the header only
                    w, h = probe.size
        except Image.DecompressionBombError:
            raise RequestError(f"{name}: image too large to open (decompression-bomb guard)") from None
        except Exception:
            raise RequestError(f"{name}: not a recognised image file (upload a PNG, JPEG, WebP, GIF or BMP)") from None
        if w * h > lim.max_pixels:
            raise RequestError(f"{name}: {w}x{h} = {w * h / 1e6:.1f} megapixels exceeds the limit of {lim.max_pixels / 1e6:.1f}")
        return load_image(str(p), name)

    def _text(self, text: Any, what: str) -> str:
        try:
            return clean_text(text if text is not None else "", max_chars=self.limits.max_text_chars, name=what)
        except TextError as exc:
            raise RequestError(str(exc)) from None

    def _need_llm(self) -> Any:
        if self.models.llm is None:
            raise RequestError(self.models.llm_error or "no LLM loaded")
        return self.models.llm

    def _ids(self, img: Image.Image) -> torch.Tensor:
        cfg = self.models.tokenizer.config
        pixels = normalize(img, cfg.vision.image_size, cfg.image_mean, cfg.image_std).unsqueeze(0)
        ids, _ = self.models.tokenizer.encode(pixels)
        return ids

    # -- handlers -----------------------------------------------------------------------------
    def tokenize(self, path: str | os.PathLike | None) -> TokenizeResult:
        """Image -> its ids (strip), this image's codebook usage, and the reconstruction."""
        img = self.read_upload(path)
        m = self.models

        def work() -> tuple[list[int], Image.Image]:
            ids = self._ids(img)
            return ids[0].tolist(), m.decoder(ids=ids).images[0]

        ids, recon = self.run(work)
        k = m.codebook_size
        return TokenizeResult(
            ids, img, display(recon), render.token_strip(ids, k), render.usage_summary(ids, k), render.usage_map(ids, k)
        )

    def caption(self, path: str | os.PathLike | None) -> str:
        """Image -> caption (greedy)."""
        llm = self._need_llm()
        img = self.read_upload(path)
        return self.run(lambda: llm.caption_codes(self._ids(img))[0]).strip() or "(empty caption)"

    def ask(self, path: str | os.PathLike | None, question: Any) -> str:
        """Image + question -> short answer (greedy)."""
        llm = self._need_llm()
        q = self._text(question, "question")
        img = self.read_upload(path)
        return self.run(lambda: llm.answer_codes(self._ids(img), [q])[0]).strip() or "(empty answer)"

    def draw(self, prompt: Any, seed: Any = 0, steps: Any = None, guidance: Any = None, temperature: Any = 0.0) -> DrawResult:
        """Prompt -> the LLM's 32 image ids -> the de-tokenizer's image."""
        from seedtok.mllm.generate import Sampling

        llm = self._need_llm()
        text = self._text(prompt, "prompt")
        lim, dec = self.limits, self.models.decoder
        try:
            seed = int(seed if seed is not None else 0)
            steps = int(steps) if steps not in (None, "") else dec.defaults.num_inference_steps
            guidance = float(guidance) if guidance not in (None, "") else dec.defaults.guidance_scale
            temperature = float(temperature or 0.0)
        except (TypeError, ValueError):
            raise RequestError("seed and steps must be integers, guidance and temperature numbers") from None
        if not 1 <= steps <= lim.max_steps:
            raise RequestError(f"steps must be in [1, {lim.max_steps}], got {steps}")
        if not 0.0 <= guidance <= lim.max_guidance:
            raise RequestError(f"guidance must be in [0, {lim.max_guidance:g}], got {guidance:g}")
        if not 0.0 <= temperature <= 2.0:
            raise RequestError(f"temperature must be in [0, 2], got {temperature:g}")
        if not 0 <= seed < 2**31:
            raise RequestError(f"seed must be in [0, 2^31), got {seed}")

        def work() -> tuple[list[int], Image.Image]:
            codes = llm.draw_codes([text], Sampling(temperature=temperature, seed=seed))
            out = dec(ids=codes, num_inference_steps=steps, guidance_scale=guidance, seed=seed)
            return codes[0].tolist(), out.images[0]

        ids, image = self.run(work)
        note = "one-step decoder: steps are ignored" if dec.one_step else f"{steps} denoising steps"
        note += f", guidance {guidance:g}, seed {seed}" + (", greedy tokens" if temperature == 0 else f", temperature {temperature:g}")
        return DrawResult(ids, display(image), render.token_strip(ids, self.models.codebook_size), note)

    def compare(self, path_a: str | os.PathLike | None, path_b: str | os.PathLike | None) -> CompareResult:
        """Two images -> their id sequences side by side with the shared prefix outlined."""
        img_a, img_b = self.read_upload(path_a, "first image"), self.read_upload(path_b, "second image")

        def work() -> tuple[list[int], list[int]]:
            return self._ids(img_a)[0].tolist(), self._ids(img_b)[0].tolist()

        a, b = self.run(work)
        names = (Path(str(path_a)).name, Path(str(path_b)).name)
        return CompareResult(a, b, render.shared_prefix(a, b), render.compare_html(a, b, self.models.codebook_size, names))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
