"""Dataset classes in one place; `training.dataset` re-exports this module.

The implementations live in `stylegan_plus.data.datasets` (one module per kind).
"""

from .datasets import Dataset, DatasetError, ImageFolderDataset, PointCloudDataset

__all__ = ['Dataset', 'DatasetError', 'ImageFolderDataset', 'PointCloudDataset']
