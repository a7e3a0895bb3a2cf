"""Where the shared real data lives, and a skip marker for when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IXI_T1 = sorted((DATA / "ixi_2mm" / "t1").glob("*.nii.gz"))
IXI_LABELS = sorted((DATA / "ixi_2mm" / "labels").glob("*.nii.gz"))
MINDBOGGLE = sorted((DATA / "mindboggle_2d" / "images").glob("*.nii.gz"))
MINDBOGGLE_LABELS = sorted((DATA / "mindboggle_2d" / "labels").glob("*.nii.gz"))

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
