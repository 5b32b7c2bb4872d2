"""``nersemble-zarr serve-synthetic FOLDER``: serve a synthetic benchmark (and dataset) on loopback, like the real
servers."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from .options import handle_errors, overwrite_file_option


@click.command("serve-synthetic")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="New file (an existing one only with --overwrite) that receives NERSEMBLE_BENCHMARK_URL=\"...\" "
                   "and, when FOLDER holds the synthetic dataset (dataset/), NERSEMBLE_DATA_URL=\"...\" (mode 0600) "
                   "while the server runs; load it with `set -a; . FILE; set +a`.")
@overwrite_file_option
@handle_errors
def serve_synthetic(folder: Path, env_file: Path, overwrite: bool) -> None:
    """Serve FOLDER (written by `nersemble-zarr synthetic`) over HTTP on 127.0.0.1 until stopped (Ctrl-C or
    SIGTERM). Its secret access URLs (the benchmarks'; the dataset's when `synthetic --dataset` wrote one) are
    written to --env-file, never to the terminal; the file is removed when the server stops, unless something else
    has replaced it meanwhile."""
    from nersemble_zarr.credentials import url_env_file
    from nersemble_zarr.outputs import claim_output_file
    from nersemble_zarr.synthetic.server import access_urls, serve

    claim_output_file(env_file, overwrite=overwrite, what="environment file")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # kill: stop like Ctrl-C, removing the file
    with serve(folder) as server:
        urls = access_urls(server)
        with url_env_file(env_file, urls):
            click.echo(f"Serving {folder} on 127.0.0.1; {' and '.join(urls)} {'is' if len(urls) == 1 else 'are'} "
                       f"in {env_file}. Stop with Ctrl-C.")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                click.echo("Stopped.")
