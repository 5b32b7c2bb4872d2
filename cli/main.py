"""Entry point of ``nersemble-zarr``: a click group whose commands are imported only when run."""

from __future__ import annotations

import importlib

import click

# command name -> "module:function" inside nersemble_zarr.cli; imported lazily so --help stays instant.
COMMANDS = {
    "demo": "demo:demo",
    "synthetic": "synthetic:synthetic",
    "synthetic-predictions": "synthetic_predictions:synthetic_predictions",
    "serve-synthetic": "serve:serve_synthetic",
    "fetch": "fetch:fetch",
    "convert": "convert:convert",
    "info": "info:info",
    "downsample": "downsample:downsample",
    "export-frames": "export_frames:export_frames",
    "combine-vhap": "export_frames:combine_vhap",
    "meshes": "meshes:meshes",
    "export-mesh": "meshes:export_mesh",
    "export-submission": "submission:export_submission",
    "validate-submission": "submission:validate_submission",
    "preview": "preview:preview",
    "preview-rig": "preview:preview_rig",
    "evaluate": "evaluate:evaluate",
    "split": "evaluate:split",
    "view": "view:view",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is invoked or described."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module_name, attribute = COMMANDS[name].split(":")
        module = importlib.import_module(f"nersemble_zarr.cli.{module_name}")
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each summary whole (click would cut them to the terminal width with "...")."""
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=10**6)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(f"nersemble_zarr.cli.{module_name}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nersemble_zarr")
def main() -> None:
    """Fetch, convert and analyse the NeRSemble 3D head avatar benchmark as a chunked zarr v3 store."""
