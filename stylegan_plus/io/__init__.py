"""Files in and out: network pickles (official and TensorFlow ones), images and grids, charts of
a run's statistics."""
