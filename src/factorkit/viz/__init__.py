"""Image grids (reconstruction, traversal, swap, edit) and the HTML report."""

from .grids import grid, image_rows, save_png, square_grid, to_pil

__all__ = ["grid", "image_rows", "save_png", "square_grid", "to_pil"]
