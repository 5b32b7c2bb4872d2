"""`python -m nersemble_zarr` runs the command line, like the `nersemble-zarr` script."""

from .cli.main import main

main()
