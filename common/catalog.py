"""Message catalogues: each language the product speaks besides English is one gettext `.po`.

`common/locale/<lang>/LC_MESSAGES/radassist.po` holds, for every user-visible template,
the English text as `msgid`, its stable key (e.g. "ddx.item") as `msgctxt`, and the
translation as `msgstr`; knowledge-base text (diagnosis names, protocols) is looked up by
its English `msgid` alone. English is the source language and needs no catalogue. Adding a
language is adding a catalogue (see the README): nothing in the code names a language other
than English, and Chinese is the catalogue that ships.

Catalogues are read with Babel (the field's gettext tooling) straight from `.po`, so there is
no compile step to forget.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "radassist"
SOURCE_LANGUAGE = "en"


@lru_cache(maxsize=1)
def catalogs() -> dict[str, dict[tuple[str | None, str], str]]:
    """{language: {(context, English msgid): translation}} for every catalogue on disk."""
    from babel.messages.pofile import read_po

    out: dict[str, dict[tuple[str | None, str], str]] = {}
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        lang = po.parent.parent.name
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=None, domain=DOMAIN)
        table: dict[tuple[str | None, str], str] = {}
        for message in catalog:
            if not message.id or not message.string or message.fuzzy:
                continue
            table[(message.context, str(message.id))] = str(message.string)
        out[lang] = table
    return out


def languages() -> tuple[str, ...]:
    """English first, then every language that has a catalogue."""
    return (SOURCE_LANGUAGE, *sorted(lang for lang in catalogs() if lang != SOURCE_LANGUAGE))


def template(lang: str, key: str, english: str) -> str:
    """The `lang` template of message `key` (English when untranslated)."""
    if lang == SOURCE_LANGUAGE:
        return english
    return catalogs().get(lang, {}).get((key, english), english)


def translate(lang: str, english: str) -> str | None:
    """The `lang` translation of a context-free English text (knowledge base), or None."""
    if lang == SOURCE_LANGUAGE:
        return english
    return catalogs().get(lang, {}).get((None, english))


def language_name(lang: str) -> str:
    """A language's own name for itself ("English", "中文"), for a language menu."""
    from babel import Locale

    try:
        return Locale.parse(lang).display_name.split(" (")[0]
    except (ValueError, TypeError):
        return lang
