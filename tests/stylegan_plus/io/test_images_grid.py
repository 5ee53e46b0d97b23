"""stylegan_plus.io.images: tiling images into a grid, and the grid people look at."""

import numpy as np
import pytest

from stylegan_plus.io import images


def _solid(values, size=(3, 2)):
    return [np.full(size + (1,), value, dtype=np.uint8) for value in values]


def test_tile_places_images_row_by_row_with_gaps_and_border():
    grid = images.tile(_solid([10, 20, 30]), cols=2, gap=1, gap_value=255)
    assert grid.shape == (3 + 1 + 3, 2 + 1 + 2, 1)
    assert (grid[:3, :2] == 10).all() and (grid[:3, 3:] == 20).all() and (grid[4:, :2] == 30).all()
    assert (grid[3] == 255).all() and (grid[:, 2] == 255).all() and (grid[4:, 3:] == 255).all()  # gaps, unused cell
    framed = images.tile(_solid([10, 20, 30]), cols=2, gap=1, gap_value=255, border=True)
    assert framed.shape == (9, 7, 1) and (framed[0] == 255).all() and (framed[:, -1] == 255).all()
    np.testing.assert_array_equal(framed[1:-1, 1:-1], grid)
    plain = images.tile(_solid([10, 20, 30]))                 # default: about square, edge to edge, black
    assert plain.shape == (6, 4, 1) and (plain[3:, 2:] == 0).all()
    with pytest.raises(ValueError, match='zero images'):
        images.tile([])


def test_display_grid_spaces_only_enlarged_images():
    small = images.display_grid(_solid([10, 20], size=(16, 16)), cols=2)  # enlarged 4x to 64 px
    assert small.shape == (64, 64 + images.DISPLAY_GUTTER + 64, 1)
    assert (small[:, 64:64 + images.DISPLAY_GUTTER] == images.DISPLAY_GUTTER_GREY).all()
    assert (small[:, :64] == 10).all() and (small[:, -64:] == 20).all()
    large = images.display_grid(_solid([10, 20], size=(64, 64)), cols=2)  # readable as is: edge to edge
    assert large.shape == (64, 128, 1)


def test_scatter_plot_fixed_window_leaves_out_and_counts_points_outside():
    window = (0.0, 0.0, 1.0)
    alone = images.scatter_plot(np.array([[0.0, 0.0]]), size=128, title='t', window=window)
    with_far = images.scatter_plot(np.array([[0.0, 0.0], [5.0, 5.0]]), size=128, title='t', window=window)
    caption_rows = 28                                   # the title band above the frame
    np.testing.assert_array_equal(alone[caption_rows:], with_far[caption_rows:])   # nothing drawn outside
    assert (alone[:caption_rows] != with_far[:caption_rows]).any()                 # '(1 outside the view)'
    shifted = images.scatter_plot(np.array([[0.5, 0.0]]), size=128, title='t', window=window)
    assert (shifted != alone).any()                     # same window, another place: the scale is fixed
    with pytest.raises(ValueError, match='half-width must be > 0'):
        images.scatter_plot(np.zeros([1, 2]), window=(0, 0, 0))

