"""Plain setuptools install of the engine and command line, without ChimeraX.

ChimeraX builds its wheel from bundle_info.xml instead (``devel build .``);
both install the same package, ``chimerax.struc2map``, from ``src/``, with the
shipped weights under ``chimerax/struc2map/weights``.
"""
from setuptools import setup

setup(
    name="struc2map",
    version="0.1.0",
    description="Experimental-like cryo-EM density maps from atomic models with a 3D GAN (struc2mapGAN)",
    python_requires=">=3.9",
    package_dir={
        "chimerax.struc2map": "src",
        "chimerax.struc2map.training": "src/training",
        "chimerax.struc2map.weights": "weights",
        "chimerax.struc2map.docs": "docs",
    },
    packages=[
        "chimerax.struc2map",
        "chimerax.struc2map.training",
        "chimerax.struc2map.weights",
        "chimerax.struc2map.docs",
    ],
    package_data={
        "chimerax.struc2map.weights": ["*.pt", "*.json", "*.md", "training/*", "training_v1/*"],
        "chimerax.struc2map.docs": ["**/*.html", "**/*.png", "*.md"],
    },
    install_requires=[
        "numpy>=1.22,<2",
        "scipy>=1.9",
        "torch>=2.1,<3",
        "mrcfile>=1.4",
        "gemmi>=0.6",
    ],
    extras_require={"training": ["matplotlib"]},  # loss and evaluation plots (skipped with a note without it)
    entry_points={"console_scripts": ["struc2map = chimerax.struc2map.cli:main"]},
)
