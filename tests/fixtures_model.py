"""Fixtures for the model tests: the committed weights bundle and small real studies."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.model.loaded import BUNDLE_FILES, default_weights_dir


def require_weights():
    """The bundle folder, or skip the test with the reason."""
    path = default_weights_dir()
    missing = [f for f in BUNDLE_FILES if not (path / f).is_file()]
    if missing:
        pytest.skip(f"weights bundle not trained yet at {path} (missing {missing})")
    return path


def study_of(path):
    from pacs_bridge.ingest import ingest

    result = ingest([path])
    assert result.studies, f"{path} did not ingest: {result.rejections}"
    return result.studies[0]


def write_photo_png(path):
    """A colour 'photograph': smooth colour gradients plus texture, no grey anatomy."""
    from PIL import Image

    yy, xx = np.mgrid[0:240, 0:320]
    rgb = np.stack([xx / 320 * 255, yy / 240 * 255, (xx * yy) % 256], -1)
    rgb = rgb + np.random.default_rng(0).normal(0, 8, rgb.shape)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def write_blank_png(path):
    from PIL import Image

    Image.fromarray(np.full((256, 256), 100, np.uint8)).save(path)
    return path
