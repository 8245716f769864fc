"""Shared I/O: atomic writes and completion markers, instance tables, OME-Zarr."""
