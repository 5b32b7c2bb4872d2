"""`nersemble-zarr info`: what a store holds and what is missing."""

from __future__ import annotations

import json

import click

from .options import handle_errors


@click.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@handle_errors
def info(store, as_json):
    """Show the tree of STORE with shapes, chunking, codec, size on disk and what is missing."""
    from nersemble_zarr.inventory import format_inventory, inventory

    result = inventory(store)
    click.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else format_inventory(result))
