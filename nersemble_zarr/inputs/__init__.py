"""Reading and validating the benchmark's input files, one module per kind, shared by fetch and convert.

Every reader parses with explicit limits before it allocates (file size, JSON nesting depth and number
length, array and point counts declared in a header checked against the bytes that hold them), checks
ranges after every cast to the dtype that is stored, and reports a problem as one InputDataError sentence
naming the file:

* ``metadata``: ``{benchmark}/metadata.json`` (participants, sequences, timesteps, frame counts);
* ``calibration``: ``camera_params.json`` (world-to-camera and intrinsic matrices);
* ``tracking``: FLAME tracking ``.npz`` files (read without numpy's pickle-capable loader);
* ``pointcloud``: ``.pcd`` point clouds (header checked before open3d reads them);
* ``files``: what every local input must be (a regular file, no link, no alias of another input);
* ``jsontext``: the bounded JSON parser the JSON kinds share.
"""
