"""Checks with h5py (libhdf5) the files `cargo test -p weights-tools --test h5_write dump_for_h5py`
writes when TLX_H5_DUMP_DIR is set: every group, attribute and dataset of each `<name>.h5`
against the description in `<name>.json`, and nothing more.

    TLX_H5_DUMP_DIR=/tmp/h5dump cargo test -p weights-tools --test h5_write dump_for_h5py
    python weights-tools/tests/h5_write_check.py /tmp/h5dump
"""

import json
import pathlib
import sys

import h5py
import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def check(h5_path, want):
    groups, datasets = {}, {}
    with h5py.File(h5_path, "r") as f:
        def attrs(obj):
            out = {}
            for k in obj.attrs:
                v = obj.attrs[k]
                t = obj.attrs.get_id(k).get_type()
                assert isinstance(t, h5py.h5t.TypeStringID) and t.is_variable_str(), (h5_path, k)
                assert t.get_cset() == h5py.h5t.CSET_UTF8, (h5_path, k)
                assert isinstance(v, str), (h5_path, k, type(v))
                out[k] = v
            return out

        groups["/"] = attrs(f)

        def visit(name, obj):
            path = "/" + name
            if isinstance(obj, h5py.Group):
                groups[path] = attrs(obj)
            else:
                a = np.asarray(obj[()])
                datasets[path] = {
                    "dtype": obj.dtype.str,
                    "shape": list(obj.shape),
                    "hex": a.astype(obj.dtype.newbyteorder("<")).tobytes().hex(),
                    "attrs": attrs(obj),
                }

        f.visititems(visit)
    assert groups == want["groups"], (h5_path, set(groups) ^ set(want["groups"]))
    assert set(datasets) == set(want["datasets"]), (h5_path, set(datasets) ^ set(want["datasets"]))
    for p, w in want["datasets"].items():
        got = datasets[p]
        exp = dict(w, dtype=np.dtype(DTYPES[w["dtype"]]).str)
        assert got == exp, (h5_path, p, got, exp)
    return len(groups), len(datasets)


def main(d):
    d = pathlib.Path(d)
    files = sorted(d.glob("*.json"))
    assert files, f"no *.json in {d}"
    for j in files:
        n_groups, n_datasets = check(j.with_suffix(".h5"), json.loads(j.read_text()))
        print(f"ok {j.with_suffix('.h5').name}: {n_groups} groups, {n_datasets} datasets")
    print(f"h5py {h5py.__version__}, libhdf5 {h5py.version.hdf5_version}: {len(files)} files match")


if __name__ == "__main__":
    main(sys.argv[1])
