"""`python -m nersemble_zarr.cli` runs the command line, like the `nersemble-zarr` script."""

from .main import main

main()
