"""TF-IDF cosine search with an inverted index, in numpy.

The same weighting as scikit-learn's `TfidfVectorizer(sublinear_tf=True)` (smooth idf,
1 + log tf, L2-normalised rows; `tests/test_ddx_tfidf.py` checks the similarities against
sklearn), written out because importing sklearn (with scipy) costs about a second of the
cold `radassist analyze` budget, and a query here only touches the postings of its own terms.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
pt patient patients presents presented presenting history hx year years old yo y o male
female man woman boy girl
""".split())
_TOKEN = re.compile(r"[a-z0-9]{2,}")


def tokens(text: str, bigrams: bool = True) -> list[str]:
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOP_WORDS]
    if bigrams:
        words = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return words


class TfidfIndex:
    """Fit on documents; `similarity(query)` -> cosine with every document (float32)."""

    def __init__(self, documents: list[str], bigrams: bool = True) -> None:
        self.bigrams = bigrams
        self.n = len(documents)
        counts = [Counter(tokens(d, bigrams)) for d in documents]
        df: Counter = Counter()
        for c in counts:
            df.update(c.keys())
        self.vocabulary = {term: i for i, term in enumerate(sorted(df))}
        self.idf = np.array([math.log((1 + self.n) / (1 + df[t])) + 1.0
                             for t in sorted(df)], dtype=np.float64)
        postings: dict[int, list[tuple[int, float]]] = {}
        for doc, c in enumerate(counts):
            weights = {self.vocabulary[t]: (1.0 + math.log(k)) * self.idf[self.vocabulary[t]]
                       for t, k in c.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for term, w in weights.items():
                postings.setdefault(term, []).append((doc, w / norm))
        self.postings = {
            term: (np.array([d for d, _ in p], dtype=np.int64),
                   np.array([w for _, w in p], dtype=np.float32))
            for term, p in postings.items()
        }

    def similarity(self, query: str) -> np.ndarray:
        scores = np.zeros(self.n, dtype=np.float32)
        c = Counter(t for t in tokens(query, self.bigrams) if t in self.vocabulary)
        if not c:
            return scores
        weights = {self.vocabulary[t]: (1.0 + math.log(k)) * self.idf[self.vocabulary[t]]
                   for t, k in c.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        for term, w in sorted(weights.items()):
            docs, values = self.postings[term]
            scores[docs] += values * np.float32(w / norm)
        return scores
