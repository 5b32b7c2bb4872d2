"""The ``nersemble-zarr`` command line: argument parsing, progress bars and error reporting only."""
