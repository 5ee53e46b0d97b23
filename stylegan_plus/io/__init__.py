"""Files in and out: network pickles (official and TensorFlow ones, read by key), images and
grids, charts and plots of a run's statistics. No click here: the command lines are in
`stylegan_plus.cli`."""
