"""What a generate run is asked, checked once: the options the command line, the ChimeraX command and the panel share.

``GenerateOptions`` holds the target resolution, the weights (a name or file; None: the shipped ones), the
device, the precision, the tiling and how the B column is read, and refuses a bad value when it is made.
Names and rules live here once: the device names (whether a device is there, and what "auto" picks, is
device.py's part, with torch), the precisions, the B-column readings (plddt.py's), the tile-size rule the
generator imposes and ``TilingConfig``, how a map is cut into tiles (tiling.py runs it).

No torch and no ChimeraX: the ChimeraX command checks its options on the main thread before any work,
and the panel fills its menus from the names here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import InputError
from .plddt import MODES as BFACTOR_MODES
from .resolution import check_resolution

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device names a menu offers; ``cuda:N`` (GPU N) is accepted too."""
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_SYNTAX = re.compile(r"auto|(cpu|cuda|mps)(:\d+)?")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""How the generator computes; "auto" is resolved per device in device.py."""

TILE_MULTIPLE = 8
"""Every spatial size of a generator input must be a multiple of this: the generator (network.py) pools
three times (2 ** (LEVELS - 1))."""
MIN_TILE = 2 * TILE_MULTIPLE
"""Smallest usable size: the deepest level then has 2 voxels per axis for instance norm."""


def valid_tile_size(n: int) -> bool:
    """True when ``n`` voxels along an axis suit the generator: a multiple of 8, at least 16."""
    return n >= MIN_TILE and n % TILE_MULTIPLE == 0


def check_tile_size(n: int) -> int:
    """``n`` if it suits the generator (:func:`valid_tile_size`), else an InputError."""
    if not valid_tile_size(n):
        raise InputError(f"The tile size must be a multiple of {TILE_MULTIPLE} voxels and at least {MIN_TILE}, "
                         f"got {n}.")
    return n


def check_device_name(name: str) -> str:
    """``name`` stripped and in lower case if it names a device (auto, cpu, cuda, cuda:N or mps), else an
    InputError. Whether that device is there is for device.resolve_device to say."""
    text = str(name).strip().lower()
    if not _DEVICE_SYNTAX.fullmatch(text):
        raise InputError(f"Unknown compute device '{text}': use {DEVICE_FORMS}.")
    return text


def _one_of(value: str, names: tuple[str, ...], what: str) -> str:
    if value not in names:
        raise InputError(f"The {what} must be one of {', '.join(names)}, got {value!r}.")
    return value


def check_precision_name(precision: str) -> str:
    """``precision`` if it is one of PRECISIONS, else an InputError."""
    return _one_of(precision, PRECISIONS, "precision")


@dataclass
class TilingConfig:
    """How a map is cut into tiles and how each batch of tiles is run (tiling.predict_tiled)."""

    tile_size: int = 32
    margin: int = 6
    batch_size: int = 8
    skip_empty: bool = True
    empty_threshold: float = 0.0
    precision: str = "auto"
    channels_last: bool = True  # CPU in bf16/fp16 only: NDHWC tensors, faster (benchmarks/README.md)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise InputError for settings the tiler cannot use (also run by predict_tiled, as fields may change)."""
        check_tile_size(self.tile_size)
        if self.margin < 0 or self.core < 1:
            raise InputError(
                f"The tile margin must be at least 0 and leave a core of at least one voxel in a "
                f"{self.tile_size}-voxel tile, got {self.margin}."
            )
        if self.batch_size < 1:
            raise InputError(f"The batch size must be at least 1, got {self.batch_size}.")
        check_precision_name(self.precision)

    @property
    def core(self) -> int:
        """Edge of the central cube kept from each predicted tile."""
        return self.tile_size - 2 * self.margin

    @classmethod
    def paper(cls) -> "TilingConfig":
        """The published inference: 32³ tiles, stride 20 (margin 6), every tile run, full precision, NCDHW."""
        return cls(tile_size=32, margin=6, skip_empty=False, precision="fp32", channels_last=False)


@dataclass(frozen=True)
class GenerateOptions:
    """A generate run's options, each checked when the object is made (InputError in one sentence).

    ``tile_size``, ``margin``, ``batch_size`` and ``precision`` left None take the tiling's defaults
    (the paper's with ``paper_tiling``); ``bfactors`` is one of BFACTOR_MODES (plddt.py).
    """

    resolution: float
    weights: str | None = None
    device: str = "auto"
    precision: str | None = None
    tile_size: int | None = None
    margin: int | None = None
    batch_size: int | None = None
    paper_tiling: bool = False
    bfactors: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", check_resolution(self.resolution))
        object.__setattr__(self, "device", check_device_name(self.device))
        _one_of(self.bfactors, BFACTOR_MODES, "B-factor reading")
        self.tiling()

    def tiling(self) -> TilingConfig:
        """A new TilingConfig: the default one (or the paper's) with the values given here."""
        base = TilingConfig.paper() if self.paper_tiling else TilingConfig()
        given = {name: getattr(self, name) for name in ("tile_size", "margin", "batch_size", "precision")
                 if getattr(self, name) is not None}  # 0 is a value, not "not given"
        return replace(base, **given)

    @property
    def use_bfactors(self) -> bool:
        """Whether the B column may feed the generator's B-factor channel."""
        return self.bfactors != "ignore"
