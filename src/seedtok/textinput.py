"""Text inputs (captions, prompts, questions): decoding, cleaning and limits.

Web captions arrive with broken encodings and control characters; prompts typed by users can
be empty or enormous. One function makes any of them safe: bytes are decoded as UTF-8 with
invalid sequences replaced (U+FFFD), text is NFC-normalised, control and format characters
become spaces, whitespace is collapsed, and a length limit is enforced.
"""

from __future__ import annotations

import unicodedata

MAX_CHARS = 2000


class TextError(ValueError):
    """A text input that cannot be used (empty after cleaning, or over the length limit)."""


def clean_text(
    text: str | bytes, max_chars: int = MAX_CHARS, truncate: bool = False, name: str = "text", allow_empty: bool = False
) -> str:
    """-> cleaned text. Raises :class:`TextError` when empty (unless ``allow_empty``) or longer
    than ``max_chars`` (unless ``truncate``, which cuts at a word boundary when possible)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TextError(f"{name}: expected text, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text)
    # Control (Cc), format (Cf, e.g. zero-width) and separator (Z*) characters -> plain spaces.
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    text = " ".join(text.split())
    if not text and not allow_empty:
        raise TextError(f"{name}: empty")
    if len(text) > max_chars:
        if not truncate:
            raise TextError(f"{name}: {len(text)} characters exceeds the limit of {max_chars}")
        cut = text[:max_chars]
        text = cut.rsplit(" ", 1)[0] if " " in cut[max_chars // 2 :] else cut
    return text
