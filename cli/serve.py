"""``nersemble-zarr serve-synthetic FOLDER``: serve a synthetic benchmark on loopback, like the real server."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from .options import handle_errors


@click.command("serve-synthetic")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File that receives NERSEMBLE_BENCHMARK_URL=\"...\" (mode 0600) while the server runs; "
                   "load it with `set -a; . FILE; set +a`.")
@handle_errors
def serve_synthetic(folder: Path, env_file: Path) -> None:
    """Serve FOLDER (written by `nersemble-zarr synthetic`) over HTTP on 127.0.0.1 until stopped (Ctrl-C or
    SIGTERM). Its secret access URL is written to --env-file, never to the terminal; the file is removed
    when the server stops."""
    from nersemble_zarr.atomic import write_atomic
    from nersemble_zarr.credentials import URL_ENV_VAR
    from nersemble_zarr.outputs import check_output_file
    from nersemble_zarr.synthetic.server import serve

    check_output_file(env_file, "environment file")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # kill: stop like Ctrl-C, removing the file
    with serve(folder) as server:
        try:
            previous = os.umask(0o077)  # the URL is a credential: the file is private from its creation
            try:
                write_atomic(env_file, f'{URL_ENV_VAR}="{server.url}"\n'.encode())
            finally:
                os.umask(previous)
            click.echo(f"Serving {folder} on 127.0.0.1; the access URL is in {env_file}. Stop with Ctrl-C.")
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("Stopped.")
        finally:
            env_file.unlink(missing_ok=True)
