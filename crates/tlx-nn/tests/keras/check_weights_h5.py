"""Checks that Keras 3 loads the `.weights.h5` files tlx writes (`Model::save_keras_weights`).

For every case directory written by the Rust test `dump_for_keras_check`:

    TLX_KERAS_CHECK_DIR=/tmp/keras-check cargo test -p tlx-nn --test save_keras_weights dump_for_keras_check
    python crates/tlx-nn/tests/keras/check_weights_h5.py /tmp/keras-check

it builds the model in Keras (from tlx's exported config, or from the `.keras` file the model
came from), calls `model.load_weights(<tlx file>)`, and checks that

1. every variable now holds, bit for bit, the value tlx saved (`expected/*.npy`, per layer path
   and index in Keras's save order), and no variable was left out;
2. `model.predict` on the recorded input matches tlx's output (relative error < 1e-5);
3. the tlx file has exactly the tree Keras writes for the same model with `save_weights`: the
   same groups and datasets (shapes, dtypes) and the same `name` attributes (variable-length
   UTF-8 strings).

Exits non-zero on the first mismatch.
"""

import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def h5_tree(path):
    """{path: description} of every group and dataset, with the `name` attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        def describe(obj):
            if isinstance(obj, h5py.Dataset):
                return ("dataset", tuple(obj.shape), obj.dtype.str)
            name = None
            if "name" in obj.attrs:
                t = obj.attrs.get_id("name").get_type()
                assert isinstance(t, h5py.h5t.TypeStringID) and t.is_variable_str(), path
                assert t.get_cset() == h5py.h5t.CSET_UTF8, path
                name = obj.attrs["name"]
            return ("group", name)

        out["/"] = describe(f)
        f.visititems(lambda n, o: out.__setitem__("/" + n, describe(o)))
    return out


def find_layer(model, path):
    layer = model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def fill_tensor_refs(obj):
    """tlx's exported config names a layer's input tensors by `keras_history` only; Keras 3.15's
    deserializer also wants their `shape` and `dtype`, which the Functional rebuild then ignores
    (it takes the tensors from the layers named in `keras_history`)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            obj["config"].setdefault("shape", [None])
            obj["config"].setdefault("dtype", "float32")
        for v in obj.values():
            fill_tensor_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            fill_tensor_refs(v)
    return obj


def build(case_dir, case):
    m = case["model"]
    if "keras" in m:
        return keras.models.load_model(m["keras"], compile=False)
    # tlx's config has no `module` keys (the Keras 2 spelling), so it goes through the loader
    # Keras uses for configs stored in legacy `.h5` files.
    from keras.src.legacy.saving import saving_utils

    config = fill_tensor_refs(json.loads((case_dir / m["config"]).read_text()))
    return saving_utils.model_from_config(config)


def check(case_dir):
    case = json.loads((case_dir / "case.json").read_text())
    model = build(case_dir, case)
    weights = case_dir / case["weights"]
    model.load_weights(str(weights))

    # 1. every variable, bit for bit
    seen = set()
    for e in case["expected"]:
        layer = find_layer(model, e["layer"])
        saved_order = layer._trainable_variables + layer._non_trainable_variables
        var = saved_order[e["index"]]
        want = np.load(case_dir / e["npy"])
        got = np.asarray(var.numpy())
        assert got.shape == want.shape, (case_dir.name, e, got.shape, want.shape)
        assert got.dtype == want.dtype, (case_dir.name, e, got.dtype, want.dtype)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (case_dir.name, e)
        seen.add(id(var))
    missing = [v.path for v in model.weights if id(v) not in seen]
    assert not missing, (case_dir.name, "variables tlx did not save", missing)

    # 2. the same predictions
    x = np.load(case_dir / case["input"])
    want = np.load(case_dir / case["output"])
    got = np.asarray(model(x, training=False))
    rel = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))
    assert rel < 1e-5, (case_dir.name, "predict", rel)

    # 3. the tree Keras itself writes
    with tempfile.TemporaryDirectory() as tmp:
        ref = pathlib.Path(tmp) / "keras.weights.h5"
        model.save_weights(str(ref))
        theirs, ours = h5_tree(ref), h5_tree(weights)
    if theirs != ours:
        for p in sorted(set(theirs) | set(ours)):
            if theirs.get(p) != ours.get(p):
                print(f"  {p}: keras {theirs.get(p)} tlx {ours.get(p)}")
        raise AssertionError(f"{case_dir.name}: tree differs from Keras's save_weights")

    n_groups = sum(1 for v in ours.values() if v[0] == "group")
    print(
        f"ok {case_dir.name}: {type(model).__name__} '{model.name}', {len(model.layers)} layers, "
        f"{len(case['expected'])} variables loaded bit-exact, predict rel err {rel:.1e}, "
        f"tree = Keras's ({n_groups} groups, {len(ours) - n_groups} datasets)"
    )


def main(root):
    root = pathlib.Path(root)
    cases = sorted(p.parent for p in root.glob("*/case.json"))
    assert cases, f"no */case.json under {root}"
    for c in cases:
        check(c)
    print(f"keras {keras.__version__}, h5py {h5py.__version__}, libhdf5 {h5py.version.hdf5_version}: "
          f"{len(cases)} cases loaded by Keras")


if __name__ == "__main__":
    main(sys.argv[1])
