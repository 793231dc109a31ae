"""Checking a PDF's first page really shows something: pdftoppm renders it, matplotlib decodes the PNG."""

from __future__ import annotations

import subprocess
from pathlib import Path


def first_page_ink(pdf: Path) -> float:
    """The share of the first page's pixels that are not the background colour (0.0 means blank)."""
    from matplotlib.image import imread

    prefix = pdf.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(prefix)], check=True)
    pngs = sorted(pdf.parent.glob(prefix.name + "*.png"))
    assert pngs, "pdftoppm wrote no image"
    img = imread(str(pngs[0]))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    background = img[0, 0]
    differs = (abs(img - background).sum(axis=2) > 0.05).mean()
    return float(differs)
