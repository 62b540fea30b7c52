"""A density map on a regular grid: values indexed [z, y, x] plus placement in Å."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MapData:
    """A map: ``array[k, j, i]`` is the value at ``origin + (i, j, k) * voxel_size`` (x, y, z in Å).

    ``origin`` is the position of the first voxel's centre (ChimeraX's "origin" in
    the volume dialog, i.e. NSTART/ORIGIN already folded in). ``header`` keeps
    free-form facts (e.g. resolution, label) that writers may record.
    """

    array: np.ndarray
    origin: np.ndarray
    voxel_size: np.ndarray
    header: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a map needs a 3D array, got shape {self.array.shape}")
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        vs = np.asarray(self.voxel_size, dtype=np.float64)
        self.voxel_size = np.full(3, float(vs)) if vs.ndim == 0 else vs.reshape(3)

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape[::-1])

    def xyz_to_ijk(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional grid indices (i, j, k) of points given in Å (x, y, z)."""
        return (np.asarray(xyz, dtype=np.float64) - self.origin) / self.voxel_size

    def ijk_to_xyz(self, ijk: np.ndarray) -> np.ndarray:
        """Positions in Å (x, y, z) of grid indices (i, j, k)."""
        return np.asarray(ijk, dtype=np.float64) * self.voxel_size + self.origin

    def with_array(self, array: np.ndarray, **header) -> "MapData":
        """A map on the same grid with other values (header copied, then updated)."""
        return MapData(array, self.origin.copy(), self.voxel_size.copy(), {**self.header, **header})
