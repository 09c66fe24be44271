"""CT/MR finding heads: negation-aware text labels, train-only selection, the bundle file."""

from __future__ import annotations

import numpy as np

from imaging.knowledge.findings_text import LabelledImage, mentions, select


def test_mentions_skip_negated_findings_within_the_clause():
    text = ("No mass effect or hemorrhage. A cystic lesion without enhancement; "
            "large enhancing mass, but no hydrocephalus.")
    assert mentions(text) == {"cyst", "mass", "enhancement"}
    assert mentions("Vasogenic oedema around the ring-enhancing tumour.") == {
        "oedema", "enhancement"}
    assert mentions("Subdural haematoma with midline shift.") == {"haemorrhage", "mass_effect"}
    assert mentions("Unremarkable study.") == frozenset()


def test_selection_counts_train_cases_only():
    items = [LabelledImage(f"i{i}", f"c{i}", "train", "CT", frozenset({"cyst"}))
             for i in range(3)]
    items += [LabelledImage(f"v{i}", f"v{i}", "val", "CT", frozenset({"mass"}))
              for i in range(9)]
    assert select(items, min_cases=3) == ("cyst",)
    # several images of one case count once
    same_case = [LabelledImage(f"i{i}", "c0", "train", "MR", frozenset({"mass"}))
                 for i in range(5)]
    assert select(same_case, min_cases=2) == ()


def test_heads_file_round_trips_and_probabilities_are_monotone(tmp_path):
    from imaging.model.findings_ctmr import FINDINGS_FILE, load_heads

    path = tmp_path / FINDINGS_FILE
    path.parent.mkdir(parents=True)
    w = np.zeros((2, 4), np.float32)
    w[0, 0], w[1, 1] = 1.0, -1.0
    np.savez(path, names=np.array(["mass", "cyst"]), weight=w,
             bias=np.zeros(2, np.float32), platt_a=np.ones(2, np.float32),
             platt_b=np.zeros(2, np.float32), thresholds=np.array([0.4, 0.6], np.float32))
    heads = load_heads(tmp_path)
    assert heads.names == ("mass", "cyst")
    x = np.zeros((3, 4), np.float32)
    x[:, 0] = [-2.0, 0.0, 2.0]
    p = heads.probabilities(x)
    assert p.shape == (3, 2) and np.all(np.diff(p[:, 0]) > 0) and np.allclose(p[:, 1], 0.5)
    assert load_heads(tmp_path / "nothing") is None
