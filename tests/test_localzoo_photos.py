"""Sample photos from scikit-image, written as JPEGs the way cv2 reads them back."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from localzoo.photos import PHOTOS, write_photos
from tests.paths import REPO


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_decodes_to_the_original_in_rgb(sample_photos, name):
    bgr = cv2.imread(str(sample_photos / (name + ".jpg")), cv2.IMREAD_COLOR)
    original = getattr(skimage.data, name)()
    assert bgr is not None and bgr.shape == original.shape
    rgb = bgr[:, :, ::-1].astype(np.int16)
    # JPEG at quality 95 stays close; swapped channels would be far off on these photos.
    assert np.abs(rgb - original).mean() < 3
    assert np.abs(bgr.astype(np.int16) - original).mean() > 10


def test_module_cli_writes_once(tmp_path):
    cmd = [sys.executable, "-m", "localzoo.photos", str(tmp_path / "photos")]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert first.returncode == 0, first.stderr
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "photos").iterdir()}
    assert sorted(mtimes) == sorted(n + ".jpg" for n in PHOTOS)
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert second.returncode == 0 and "already up to date" in second.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "photos").iterdir()} == mtimes


def test_photo_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(ValueError, match="x exists and is not a directory"):
        write_photos(tmp_path / "x")
