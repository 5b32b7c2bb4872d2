"""Preview pictures: a contact sheet of every camera of a timestep with the FLAME mesh or point cloud
projected as dots, and a 3D plot of the camera rig. matplotlib is imported only when a picture is drawn.

    write_preview("nersemble.zarr", "sheet.png", 388, timestep=0)
    write_rig_preview("nersemble.zarr", "rig.png", 388)
    write_preview("nersemble.zarr", "svfr.png", 215, meshes="svfr.zip")   # SVFR images, meshes beside them
"""

from .build import open_sequence, preview_picture, write_preview, write_rig_preview
from .overlay import Overlay, overlay_points
from .rig import rig_picture
from .sheet import ContactSheet, Tile, contact_sheet

__all__ = [
    "ContactSheet",
    "Overlay",
    "Tile",
    "contact_sheet",
    "open_sequence",
    "overlay_points",
    "preview_picture",
    "rig_picture",
    "write_preview",
    "write_rig_preview",
]
