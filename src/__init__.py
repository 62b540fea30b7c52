"""Struc2map: experimental-like cryo-EM maps from atomic models (struc2mapGAN).

The engine modules (molmap, mapio, network, tiling, metrics, ...) never import
ChimeraX; only the bundle glue below and the command and panel modules do.
"""
__version__ = "0.1.0"

try:  # The bundle glue exists only where ChimeraX does; the engine and CLI work without it.
    from chimerax.core.toolshed import BundleAPI
except ImportError:
    BundleAPI = None

if BundleAPI is not None:

    class _Struc2mapAPI(BundleAPI):
        """How ChimeraX's toolshed reaches the bundle: commands on first use, the panel on demand."""

        api_version = 1

        @staticmethod
        def register_command(bi, ci, logger):
            """Register ``struc2map`` and ``struc2map stop`` (called lazily, on first use of either)."""
            from . import cmd

            cmd.register_command(logger)

        @staticmethod
        def start_tool(session, bi, ti):
            """Show the Struc2mapGAN panel (one per session)."""
            from chimerax.core.tools import get_singleton

            from .tool import Struc2mapTool

            return get_singleton(session, Struc2mapTool, ti.name)

    bundle_api = _Struc2mapAPI()
