"""One user-visible string in every language the product speaks.

The note composer, the knowledge base and the guideline rules all hand text to the reader;
they share this one type (it was two identical ones, `Text` and `Bilingual`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    en: str
    zh: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en
