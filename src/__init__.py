"""Struc2map: experimental-like cryo-EM maps from atomic models (struc2mapGAN).

The engine modules (molmap, mapio, network, tiling, metrics, ...) never import
ChimeraX; only the bundle glue below and the command and panel modules do.
"""
__version__ = "0.1.0"
