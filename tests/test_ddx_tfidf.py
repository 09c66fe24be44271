"""The hand-written TF-IDF gives sklearn's cosine similarities (same tokens, same weights)."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from imaging.ddx.tfidf import TfidfIndex, tokens

DOCS = [
    "Fever, productive cough and pleuritic chest pain for three days.",
    "Sudden onset left hemiparesis and aphasia; atrial fibrillation.",
    "Hematuria in an elderly smoker; bladder wall thickening.",
    "Chronic cough, night sweats, weight loss; fever.",
    "",
]


def test_matches_sklearn():
    index = TfidfIndex(DOCS)
    reference = TfidfVectorizer(analyzer=tokens, sublinear_tf=True)
    matrix = reference.fit_transform(DOCS)
    for query in ("fever and cough", "left hemiparesis", "weight loss night sweats fever",
                  "nothing shared"):
        expected = (matrix @ reference.transform([query]).T).toarray().ravel()
        np.testing.assert_allclose(index.similarity(query), expected, atol=1e-5)
    assert index.similarity("left hemiparesis").argmax() == 1
