"""One user-visible string in every language the product speaks.

A `Text` maps a language code to the string. The note composer, the knowledge base and the
guideline rules all hand text to the reader through this one type (it was two identical
ones, `Text` and `Bilingual`, each with fixed `en`/`zh` fields). English is always present;
a language a `Text` was not built with is looked up in that language's catalogue by the
English text (`common.catalog.translate`), and falls back to English. So a new language
needs a catalogue, not a new field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


class Text:
    """Immutable, hashable {language: string}; `Text(en, zh, **others)`."""

    __slots__ = ("_values",)

    def __init__(self, en: str, zh: str | None = None, **others: str) -> None:
        values = {"en": str(en)}
        if zh is not None:
            values["zh"] = str(zh)
        values.update({k: str(v) for k, v in others.items()})
        object.__setattr__(self, "_values", tuple(sorted(values.items())))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Text:
        rest = {k: str(v) for k, v in values.items() if k != "en" and v is not None}
        return cls(str(values.get("en", "")), **rest)

    @classmethod
    def per_language(cls, make: Callable[[str], str], languages: Iterable[str]) -> Text:
        """A Text whose string in each language is `make(language)`."""
        return cls.from_mapping({lang: make(lang) for lang in languages})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Text is immutable")

    @property
    def en(self) -> str:
        return self._values[0][1] if self._values[0][0] == "en" else dict(self._values)["en"]

    @property
    def zh(self) -> str:
        return self.get("zh")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang, _ in self._values)

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)

    def get(self, lang: str) -> str:
        values = dict(self._values)
        if lang in values:
            return values[lang]
        from common.catalog import translate

        return translate(lang, values["en"]) or values["en"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return "Text(" + ", ".join(f"{k}={v!r}" for k, v in self._values) + ")"


def join(texts: Iterable[Text], separator: Text) -> Text:
    """The texts joined language by language with that language's separator."""
    texts = list(texts)
    langs = sorted({lang for t in (*texts, separator) for lang in t.languages})
    return Text.per_language(
        lambda lang: separator.get(lang).join(t.get(lang) for t in texts), langs)
