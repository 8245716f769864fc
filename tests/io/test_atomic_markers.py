"""Completion markers: a killed writer's temporary file is removed once the run is done."""

from mitoscale.io.atomic import MarkerSet


def test_remove_stale_writes_keeps_markers_and_drops_orphans(tmp_path):
    markers = MarkerSet(tmp_path / ".markers")
    assert markers.remove_stale_writes() == 0  # no directory yet
    markers.mark(3, {"images": [6, 8]})
    orphan = tmp_path / ".markers" / ".00000004.done.k2j3.tmp"  # as atomic_write_bytes names it
    orphan.write_text("{")
    other = tmp_path / ".markers" / "notes.tmp"  # not a marker write: left alone
    other.write_text("x")
    assert markers.remove_stale_writes() == 1
    assert not orphan.exists() and other.exists()
    assert markers.completed() == ["00000003"] and markers.info(3) == {"images": [6, 8]}
