"""Figures made of pictures: a grid with a title over each picture and an optional caption
under it (the quick start's grid, ``axiomcam compare``).

Examples:
    >>> import tempfile, os
    >>> from PIL import Image
    >>> from axiomcam.figures import save_grid
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> pictures = [[Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), "red")]]
    >>> save_grid(path, pictures, [["image", "map"]], captions=[["", "CE 0.01"]])
    >>> Image.open(path).size[0] > 0
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .methods import METHODS

__all__ = ["axiom_caption", "method_title", "save_grid"]


def method_title(method: str, *, counterfactual: bool = False) -> str:
    """The display name of a method: ``"xgradcam"`` -> ``"XGrad-CAM"``,
    ``"guided_gradcam"`` -> ``"Guided Grad-CAM"``; a counterfactual map (the evidence
    against the class) says so.

    Examples:
        >>> method_title("guided_gradcam++"), method_title("something")
        ('Guided Grad-CAM++', 'something')
        >>> method_title("gradcam", counterfactual=True)
        'Grad-CAM (counterfactual)'
    """
    title = METHODS[method].title if method in METHODS else method
    return f"{title} (counterfactual)" if counterfactual else title


def axiom_caption(conservation_error: float, sensitivity_error: float) -> str:
    """The caption under a map with channel weights: its conservation error (CE) and
    sensitivity error (SE) of XGrad-CAM's axioms.

    Examples:
        >>> axiom_caption(0.0123, 0.5)
        'CE 0.012   SE 0.500'
    """
    return f"CE {conservation_error:.3f}   SE {sensitivity_error:.3f}"


def save_grid(path: str | os.PathLike[str], pictures: Sequence[Sequence[Image.Image]],
              titles: Sequence[Sequence[str]],
              captions: Sequence[Sequence[str]] | None = None,
              cell_inches: float = 3.2, dpi: int = 100) -> None:
    """Write a grid of pictures, one title above and (optionally) one caption below each.

    Args:
        path: the file to write; the format follows its suffix (``.png``, ``.pdf``,
            ``.svg``, ``.jpg``).
        pictures: rows of PIL images, every row as long as the first.
        titles: the same shape as ``pictures``.
        captions: the same shape, or ``None``; an empty string leaves a picture uncaptioned.
        cell_inches: the width of one cell.
        dpi: resolution of raster formats.

    Raises:
        ValueError: no pictures, rows of different lengths, or titles/captions whose shape
            differs from the pictures'.
    """
    rows = len(pictures)
    columns = len(pictures[0]) if rows else 0
    if rows == 0 or columns == 0:
        raise ValueError("save_grid needs at least one picture")
    for name, grid in (("pictures", pictures), ("titles", titles), ("captions", captions)):
        if grid is not None and (len(grid) != rows or any(len(row) != columns for row in grid)):
            raise ValueError(f"{name} must be {rows} rows of {columns}, got rows of "
                             f"{[len(row) for row in grid]}")
    # each row as tall as its tallest picture needs at the cell width, plus the text lines
    aspects = [max(picture.height / picture.width for picture in row) for row in pictures]
    lines = max(title.count("\n") + 1 for row in titles for title in row)
    text_inches = 0.2 * lines + (0.3 if captions is not None else 0.0) + 0.1
    heights = [cell_inches * aspect + text_inches for aspect in aspects]
    # the object-oriented API draws with Agg without touching pyplot's global backend
    figure = Figure(figsize=(cell_inches * columns, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False,
                           gridspec_kw={"height_ratios": heights})
    for row in range(rows):
        for column in range(columns):
            axis = axes[row][column]
            axis.imshow(pictures[row][column])
            axis.set_title(titles[row][column], fontsize=10)
            # set_xticks([]) rather than axis_off, so that the x label (caption) still shows
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if captions is not None and captions[row][column]:
                axis.set_xlabel(captions[row][column], fontsize=9)
    figure.savefig(path, dpi=dpi)
