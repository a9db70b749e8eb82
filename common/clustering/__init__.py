"""Clustering for Deep Clustering: torch k-means, PCA whitening, agreement between clusterings, cube ids."""

from common.clustering.agreement import adjusted_rand_index, contingency, normalized_mutual_information
from common.clustering.cube_ids import CubeIdDataset, cube_ids
from common.clustering.kmeans import KMeansResult, kmeans, kmeans_plus_plus, squared_distances
from common.clustering.whitening import fit_whitening, whiten

__all__ = [
    "CubeIdDataset",
    "KMeansResult",
    "adjusted_rand_index",
    "contingency",
    "cube_ids",
    "fit_whitening",
    "kmeans",
    "kmeans_plus_plus",
    "normalized_mutual_information",
    "squared_distances",
    "whiten",
]
