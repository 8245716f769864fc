"""mitoscale.track: follow each mitochondrion through a timelapse (laptrack).

Layers: ``config`` (TrackConfig), ``link`` (kernel: one timelapse's instance
table -> track ids, tracks and fission/fusion events), ``outputs`` (track and
events tables, napari CSV), ``run`` (one Dask task per timelapse, markers),
``cli`` (``mitoscale track``), ``synthetic`` (timelapses with known tracks).
"""
