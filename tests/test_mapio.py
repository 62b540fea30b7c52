"""Map reading and writing, checked against ChimeraX's own MRC/CCP4 reader on real and crafted files."""
import gzip
import os
import re
import shutil
import struct
import warnings

import mrcfile
import numpy as np
import pytest

import tests.chimerax_session  # noqa: F401  (aliases collections names before chimerax modules load)
from chimerax.map_data import open_file as chimerax_open
from chimerax.struc2map import files
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import read_map, write_map


# The maps of the full data set's pair lists, less the two from repositories DATA_POLICY.md reserves
# (apoferritin_emd20026, t20s_4.8A); the ones tests/data ships run from any clone.
PAIR_MAPS = ["vp6_emd6272/6272.mrc.gz",
             "haemoglobin_emd3488/emd_3488.mrc.gz", "spike_ntd_emd21457/emd_21457_seg.mrc.gz",
             "hcn4_emd0093/MAP_m4A.mrc.gz", "actin_emd5168/emd_5168.map.gz", "emd35448_8ihl/35448_8ihl.mrc.gz",
             "rubella_emd8249/emd_8249.map.gz", "t20s_fragment_emd5623/test_map.ccp4.gz",
             "gsec_emd3240/5fn5_box.ccp4.gz", "kinesin_emd6187/chain_K_box.ccp4.gz",
             "chaperonin_3los/chain_A_box.ccp4.gz"]


UNPAIRED = {"emd2867_4uft_box.mrc.gz": (3, 2, 1), "emd0775_6ksw_box.mrc.gz": (3, 2, 1),
            "emd21367_6vrc_box.mrc.gz": (3, 2, 1), "emd32143_lowres.map.gz": (2, 1, 3),
            "emd1461_segment.mrc.gz": (1, 2, 3), "emd2513_segment.mrc.gz": (1, 2, 3),
            "emd5625.map.gz": (1, 2, 3), "emd6824.mrc.gz": (1, 2, 3)}


def chimerax_read(path, tmp_path):
    """(values [z, y, x], origin, step) as ChimeraX reads the file; ``.gz`` unpacked first."""
    path = str(path)
    if path.endswith(".gz"):
        plain = tmp_path / os.path.basename(path)[:-3]
        with gzip.open(path, "rb") as f, open(plain, "wb") as g:
            shutil.copyfileobj(f, g)
        path = str(plain)
    (grid,) = chimerax_open(path)
    return grid.matrix(), np.array(grid.origin), np.array(grid.step)


def assert_reads_like_chimerax(path, tmp_path):
    ours = read_map(path)
    values, origin, step = chimerax_read(path, tmp_path)
    np.testing.assert_array_equal(ours.array, values)
    np.testing.assert_allclose(ours.origin, origin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.voxel_size, step, rtol=0, atol=1e-12)
    assert ours.array.dtype == np.float32 and ours.array.flags.c_contiguous
    return ours


@pytest.mark.parametrize("name", PAIR_MAPS)
def test_pair_maps_read_like_chimerax(data, tmp_path, name):
    assert_reads_like_chimerax(data(name), tmp_path)


@pytest.mark.parametrize("name", sorted(UNPAIRED))
def test_unpaired_maps_read_like_chimerax_whatever_the_axis_order(data, tmp_path, name):
    path = data(f"unpaired/{name}")
    with mrcfile.open(path) as mrc:
        h, file_order = mrc.header, mrc.data.copy()
        axes = (int(h.mapc), int(h.mapr), int(h.maps))
    assert axes == UNPAIRED[name]
    m = assert_reads_like_chimerax(path, tmp_path)
    # a reader ignoring MAPC/MAPR/MAPS would return the file order
    assert np.array_equal(m.array, file_order) == (axes == (1, 2, 3))


def test_origin_and_nstart_placements_agree(data):
    a = read_map(data("spike_ntd_emd21457/emd_21457_seg.mrc.gz"))
    b = read_map(data("spike_ntd_emd21457/emd_21457_seg_nstart.mrc.gz"))
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a.voxel_size, b.voxel_size)
    np.testing.assert_allclose(a.origin, b.origin, rtol=0, atol=1e-4)  # ORIGIN is stored as float32
    assert np.abs(a.origin).min() > 100 and a.array.shape == (47, 40, 48)


def _sample_map(origin=(10.5, -3.25, 7.0), voxel=(1.1, 1.2, 0.9)):
    rng = np.random.default_rng(0)
    return MapData(rng.normal(size=(5, 6, 7)).astype(np.float32), origin, voxel)


@pytest.mark.parametrize("name", ["out.mrc", "out.mrc.gz"])
def test_round_trip_keeps_values_placement_and_label(tmp_path, name):
    m, label = _sample_map(), "struc2map 0.1.0 res 3.5 weights sha256:abcd1234"
    write_map(tmp_path / name, m, label=label)
    back = assert_reads_like_chimerax(tmp_path / name, tmp_path)
    np.testing.assert_array_equal(back.array, m.array)
    np.testing.assert_allclose(back.origin, m.origin, rtol=1e-7)
    np.testing.assert_allclose(back.voxel_size, m.voxel_size, rtol=1e-6)
    assert back.header["labels"] == [label]
    with mrcfile.open(tmp_path / name) as mrc:
        h = mrc.header
        assert int(h.mode) == 2 and (int(h.nxstart), int(h.nystart), int(h.nzstart)) == (0, 0, 0)
        assert (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
        np.testing.assert_allclose([h.cella.x, h.cella.y, h.cella.z], np.array([7, 6, 5]) * m.voxel_size, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ccp4_names_are_written_with_nstart_so_chimerax_places_them(tmp_path):
    m = _sample_map(origin=(-11.0, 24.0, 4.5), voxel=(1.1, 1.2, 0.9))
    write_map(tmp_path / "out.map", m, label="x" * 100)
    back = assert_reads_like_chimerax(tmp_path / "out.map", tmp_path)
    np.testing.assert_allclose(back.origin, m.origin, atol=1e-5)
    assert back.header["labels"] == ["x" * 80]
    with pytest.raises(InputError, match="whole voxels.*use a .mrc name"):
        write_map(tmp_path / "frac.ccp4", _sample_map(origin=(0.3, 0, 0)))
    assert not (tmp_path / "frac.ccp4").exists()


def test_overwrite_needs_permission(tmp_path):
    path = tmp_path / "m.mrc"
    write_map(path, _sample_map())
    with pytest.raises(InputError, match="already exists"):
        write_map(path, _sample_map(origin=(0, 0, 0)))
    assert read_map(path).origin[0] == 10.5
    write_map(path, _sample_map(origin=(0, 0, 0)), overwrite=True)
    assert read_map(path).origin[0] == 0


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), RuntimeError("disk gone")])
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, failure):
    path = tmp_path / "m.mrc"
    write_map(path, _sample_map())
    before = path.read_bytes()

    def broken_set_data(self, data):
        self._iostream.write(b"partial")
        raise failure

    monkeypatch.setattr(mrcfile.mrcfile.MrcFile, "set_data", broken_set_data)
    with pytest.raises(InputError if isinstance(failure, OSError) else RuntimeError):
        write_map(path, _sample_map(origin=(0, 0, 0)), overwrite=True)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.mrc"]


def test_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    def no_link(src, dst):  # a new file is published with a hard link (never replaces one made meanwhile)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "link", no_link)
    with pytest.raises(InputError, match=r"Could not write the map .*new\.mrc: Permission denied"):
        write_map(tmp_path / "new.mrc", _sample_map())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_is_named(tmp_path):
    with pytest.raises(InputError, match="no_such_folder"):
        write_map(tmp_path / "no_such_folder" / "m.mrc", _sample_map())
    with pytest.raises(InputError, match="is a folder"):
        write_map(tmp_path, _sample_map(), overwrite=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="ro"):
            write_map(folder / "m.mrc", _sample_map())
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


# Crafted files with broken or unusual headers: byte offsets of the MRC-2014 header.
CELL, ANGLES, AXES, ORIGIN, MAP_ID, MACHST, NSTART = 40, 52, 64, 196, 208, 212, 16


def _crafted(tmp_path, name="c.mrc", data=None, origin=(5.0, 6.0, 7.0), start=(0, 0, 0), edits=()):
    path = tmp_path / name
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5) if data is None else data
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 1.5
        mrc.header.origin = origin
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = start
    endian = "<" if data.dtype.byteorder in "=<|" else ">"
    with open(path, "r+b") as f:
        for offset, fmt, values in edits:
            f.seek(offset)
            f.write(struct.pack(endian + fmt, *values) if fmt else values)
    return path


def read_like_chimerax_with_warnings(path, tmp_path):
    """Read as assert_reads_like_chimerax does; also return our warnings (those naming the file)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = assert_reads_like_chimerax(path, tmp_path)
    return m, [str(w.message) for w in caught if str(w.message).startswith(f"{path.name}: ")]


@pytest.mark.parametrize("edits, warning", [
    ([(CELL, "3f", (0, 0, 0))], "using 1 Å"),
    ([(MAP_ID, None, b"XXXX")], "ORIGIN .* ignored for a file without the MAP id"),
    ([(AXES, "3i", (0, 0, 0))], "axis order .* invalid"),
    ([(AXES, "3i", (3, 1, 2))], None),
    ([(ANGLES, "3f", (0, 0, 0))], "invalid cell angles"),
    ([(ORIGIN, "3f", (0, 0, 0)), (NSTART, "3i", (10**6, 0, 0))], None),  # uninitialised NSTART
    ([(ORIGIN, "3f", (1e17, 0, 0)), (NSTART, "3i", (2, 3, 4))], None),  # uninitialised ORIGIN
    ([(ORIGIN, "3f", (np.nan, 0, 0)), (NSTART, "3i", (2, 3, 4))], None),
    ([(MACHST, None, b"\x44\xb8\xc7\x40")], None),  # a garbage machine stamp, as in region0.mrc.gz
])
def test_odd_headers_read_like_chimerax(tmp_path, edits, warning):
    _m, ours = read_like_chimerax_with_warnings(_crafted(tmp_path, edits=edits), tmp_path)
    assert any(re.search(warning, w) for w in ours) if warning else ours == []


def test_ccp4_file_ignores_origin_as_chimerax_does(tmp_path):
    m, ours = read_like_chimerax_with_warnings(_crafted(tmp_path, "c.map", start=(-2, 1, 3)), tmp_path)
    np.testing.assert_allclose(m.origin, np.array([-2, 1, 3]) * 1.5)
    assert any("ORIGIN (5.0, 6.0, 7.0) is ignored for a .map/.ccp4 file" in w for w in ours)


@pytest.mark.parametrize("dtype, old_style", [
    (np.int8, False), (np.int8, True),  # old-style MRC (no MAP id): mode 0 is unsigned
    (np.int16, False), (np.uint16, False), (np.float16, False), (">f4", False),
])
def test_value_types_and_byte_order_read_like_chimerax(tmp_path, dtype, old_style):
    data = (np.arange(60) - 30).reshape(3, 4, 5).astype(dtype)
    edits = [(MAP_ID, None, b"XXXX")] if old_style else []
    m, _ = read_like_chimerax_with_warnings(_crafted(tmp_path, data=data, edits=edits), tmp_path)
    np.testing.assert_array_equal(m.array, (data.view(np.uint8) if old_style else data).astype(np.float32))


def test_skewed_cell_is_refused(tmp_path):
    with pytest.raises(InputError, match="skewed cell"):
        read_map(_crafted(tmp_path, edits=[(ANGLES, "3f", (90, 90, 120))]))


def test_truncated_and_foreign_files_raise_input_error(tmp_path, data):
    full = _crafted(tmp_path).read_bytes()
    cases = {"cut.mrc": full[:-10], "header_only.mrc": full[:1024], "short.mrc": full[:500],
             "text.mrc": b"not a map at all\n" * 100, "cut.mrc.gz": gzip.compress(full)[:-40],
             "empty.mrc": full[:1024].replace(struct.pack("<3i", 5, 4, 3), struct.pack("<3i", 0, 4, 3), 1),
             "complex.mrc": _crafted(tmp_path, "c.mrc", data=np.ones((3, 4, 5), np.complex64)).read_bytes()}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=name.replace(".", r"\.")):
            read_map(tmp_path / name)
    with pytest.raises(InputError, match="not a readable MRC/CCP4 map"):
        read_map(data("t20s_fragment_emd5623/test_model.pdb"))
    with pytest.raises(InputError, match="does not exist"):
        read_map(tmp_path / "missing.mrc")
