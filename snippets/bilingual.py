"""Text a reader sees, in both of the course's languages, written where it is made.

A demo writes each string that a page shows as `say("English", "中文")`: the English is
the string itself, so the demo reads, runs and tests as before; the Chinese rides along in
`.zh`. The build runs a demo once and renders its result twice: the English edition shows
the strings, the Chinese edition their `.zh` (tables, sentences, figure titles, axis labels
and legends alike). Nothing is computed, or timed, twice.

    >>> n = 3
    >>> label = say(f"{n} heads", f"{n} 个头")
    >>> label, zh(label)
    ('3 heads', '3 个头')
    >>> zh("head: " + label)
    'head: 3 个头'

Joining keeps both languages (`+`, `join`, and `plotting.markdown_table`); an f-string
does not: write the whole sentence in each language instead. Data that stays as it is in
every language (the tokens of an English example sentence, a machine's name) is `same`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class Say(str):
    """A string in English that carries its Chinese twin (`.zh`) and the parts of it
    that are data, kept verbatim in both (`.kept`)."""

    zh: str
    kept: frozenset[str]

    def __new__(cls, en: str, zh: str, kept: Iterable[str] = ()) -> Say:
        for name, text in (("en", en), ("zh", zh)):
            if not isinstance(text, str):
                raise TypeError(f"say: {name} must be a str, not {type(text).__name__}")
        text = super().__new__(cls, en)
        text.zh = str.__str__(zh)
        text.kept = frozenset(kept)
        return text

    def __str__(self) -> Say:
        # str(text) keeps the twin: matplotlib stores what str() returns as a label
        return self

    def __add__(self, other: str) -> Say:
        return Say(
            str.__add__(self, other), self.zh + zh(other), self.kept | kept(other)
        )

    def __radd__(self, other: str) -> Say:
        return Say(
            str.__add__(other, self), zh(other) + self.zh, self.kept | kept(other)
        )

    def __reduce__(self) -> tuple:  # copies and pickles keep the twin
        return (Say, (str.__str__(self), self.zh, self.kept))


def say(en: str, zh: str, *within: object) -> Say:
    """`en` for the English edition, `zh` for the Chinese one; `within`: the texts that
    a sentence embeds (with `zh(...)`), whose verbatim data it keeps (see `same`)."""
    return Say(en, zh, frozenset().union(*(kept(text) for text in within)))


def same(text: str) -> Say:
    """Data shown as it is in both editions: a token of an English example, a name."""
    return Say(text, text, {text} if text else ())


def zh(text: object) -> str:
    """The Chinese of `text`: a Say's twin; anything else as str() writes it (a number)."""
    return text.zh if isinstance(text, Say) else str.__str__(str(text))


def kept(text: object) -> frozenset[str]:
    """The parts of `text` that stay verbatim in both languages (see `same`)."""
    return text.kept if isinstance(text, Say) else frozenset()


def join(separator: str, parts: Iterable[object]) -> Say:
    """`separator.join(parts)` in both languages."""
    parts = list(parts)
    return Say(
        str(separator).join(str.__str__(str(p)) for p in parts),
        zh(separator).join(zh(p) for p in parts),
        frozenset().union(kept(separator), *(kept(p) for p in parts)),
    )


# Where a Chinese character meets a Latin letter, digit or `$`: Chinese technical
# writing puts a space there ("比 PyTorch 快"), and none between two Chinese characters.
_CJK, _LATIN = "\u3400-\u9fff", "A-Za-z0-9$+"
_TOUCHING = re.compile(f"(?<=[{_CJK}])(?=[{_LATIN}])|(?<=[{_LATIN}])(?=[{_CJK}])")


def spaced(*parts: str) -> str:
    """Chinese parts joined, with a space where a Chinese character meets a Latin one.

    >>> spaced("FAVOR+", "比", "我们的注意力", "快 3 倍")
    'FAVOR+ 比我们的注意力快 3 倍'
    """
    text = ""
    for part in parts:
        text += " " if text and part and _TOUCHING.match(text[-1] + part[0], 1) else ""
        text += part
    return text


def in_language(text: object, language: str) -> str:
    """`text` as the edition in `language` shows it ("en" or "zh")."""
    if language == "zh":
        return zh(text)
    return str.__str__(str(text))


__all__ = ["Say", "in_language", "join", "kept", "same", "say", "spaced", "zh"]
