"""Training datasets: the abstract `Dataset`, image folders/zips, and 2-D point clouds."""

from .base import Dataset, DatasetError
from .image_folder import ImageFolderDataset
from .point_cloud import PointCloudDataset

__all__ = ['Dataset', 'DatasetError', 'ImageFolderDataset', 'PointCloudDataset']
