"""Data: the dataset classes the trainer reads (`datasets/`, re-exported by `dataset.py`), the
library behind `dataset_tool.py`, the 2-D toy mixtures and the bundled digits data set."""
