#!/usr/bin/env python3
"""TensorFlow-CPU convolution throughput on the layer shapes of benches/conv.rs, batch 8,
NHWC float32; forward, backward-input and backward-kernel (tf.raw_ops Conv2D /
Conv2DBackpropInput / Conv2DBackpropFilter inside tf.function). By default three VGG16
layers (3x3 'same', stride 1); `--layers vgg16` every distinct VGG16 shape, `--layers
resnet50` every distinct ResNet50 shape (the 7x7/2 stem on its zero-padded 230x230 input,
1x1 'valid' convolutions, strided where a stage starts, 3x3 'same'), or a comma-separated
list of names from those sets. FLOPs of each pass = 2*n*out_h*out_w*c_out*kh*kw*c_in.
Prints the median GFLOP/s per case:

    benches/peers/.venv/bin/python benches/peers/conv_tf.py [--threads 2] [--runs 7] [--layers resnet50] [--passes forward,...]
"""
import argparse
import os
import time

def vgg(name, hw, c_in, c_out):
    return (name, hw, c_in, c_out, 3, 1, "SAME")


def pointwise(name, hw, c_in, c_out, stride):
    return (name, hw, c_in, c_out, 1, stride, "VALID")


# (name, input size, c_in, c_out, kernel size, stride, padding), as in benches/conv.rs.
VGG16_ALL = [
    vgg("block1_conv1", 224, 3, 64), vgg("block1_conv2", 224, 64, 64),
    vgg("block2_conv1", 112, 64, 128), vgg("block2_conv2", 112, 128, 128),
    vgg("block3_conv1", 56, 128, 256), vgg("block3_conv2", 56, 256, 256),
    vgg("block4_conv1", 28, 256, 512), vgg("block4_conv2", 28, 512, 512),
    vgg("block5_conv1", 14, 512, 512),
]
RESNET50_ALL = [
    ("conv1_conv", 230, 3, 64, 7, 2, "VALID"),
    pointwise("conv2_block1_1", 56, 64, 64, 1), vgg("conv2_block1_2", 56, 64, 64),
    pointwise("conv2_block1_0", 56, 64, 256, 1), pointwise("conv2_block2_1", 56, 256, 64, 1),
    pointwise("conv3_block1_1", 56, 256, 128, 2), vgg("conv3_block1_2", 28, 128, 128),
    pointwise("conv3_block1_3", 28, 128, 512, 1), pointwise("conv3_block1_0", 56, 256, 512, 2),
    pointwise("conv3_block2_1", 28, 512, 128, 1),
    pointwise("conv4_block1_1", 28, 512, 256, 2), vgg("conv4_block1_2", 14, 256, 256),
    pointwise("conv4_block1_3", 14, 256, 1024, 1), pointwise("conv4_block1_0", 28, 512, 1024, 2),
    pointwise("conv4_block2_1", 14, 1024, 256, 1),
    pointwise("conv5_block1_1", 14, 1024, 512, 2), vgg("conv5_block1_2", 7, 512, 512),
    pointwise("conv5_block1_3", 7, 512, 2048, 1), pointwise("conv5_block1_0", 14, 1024, 2048, 2),
    pointwise("conv5_block2_1", 7, 2048, 512, 1),
]
DEFAULT = ["block1_conv1", "block3_conv1", "block5_conv1"]
BATCH = 8


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--layers", default=",".join(DEFAULT),
                   help="vgg16, resnet50 or comma-separated layer names")
    p.add_argument("--passes", default="forward,backward_input,backward_kernel")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    sets = {"vgg16": VGG16_ALL, "resnet50": RESNET50_ALL}
    if args.layers in sets:
        layers = sets[args.layers]
    else:
        by_name = {l[0]: l for l in VGG16_ALL + RESNET50_ALL}
        unknown = [n for n in args.layers.split(",") if n not in by_name]
        if unknown:
            p.error(f"unknown layers {unknown}; known: vgg16, resnet50, {', '.join(by_name)}")
        layers = [by_name[n] for n in args.layers.split(",")]
    for name, hw, c_in, c_out, size, stride, padding in layers:
        out = -(-hw // stride) if padding == "SAME" else (hw - size) // stride + 1
        x = tf.constant(rng.uniform(-1, 1, (BATCH, hw, hw, c_in)).astype(np.float32))
        k = tf.constant(rng.uniform(-1, 1, (size, size, c_in, c_out)).astype(np.float32))
        dy = tf.constant(rng.uniform(-1, 1, (BATCH, out, out, c_out)).astype(np.float32))
        in_shape = tf.constant([BATCH, hw, hw, c_in], dtype=tf.int32)
        k_shape = tf.constant([size, size, c_in, c_out], dtype=tf.int32)
        strides = [1, stride, stride, 1]
        cases = {
            "forward": tf.function(lambda: tf.raw_ops.Conv2D(
                input=x, filter=k, strides=strides, padding=padding)),
            "backward_input": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=in_shape, filter=k, out_backprop=dy, strides=strides, padding=padding)),
            "backward_kernel": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=k_shape, out_backprop=dy, strides=strides, padding=padding)),
        }
        flops = 2.0 * BATCH * out * out * c_out * size * size * c_in
        for case, fn in cases.items():
            if case not in args.passes.split(","):
                continue
            fn().numpy()  # trace and warm up
            fn().numpy()
            times = []
            for _ in range(args.runs):
                # Eager CPU execution is synchronous: the call returns with the result computed
                # (no copy to numpy inside the timed region).
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            times.sort()
            med = times[len(times) // 2]
            print(f"peer: tf-cpu {tf.__version__} conv {name} {case} {args.threads}t: "
                  f"{flops / med / 1e9:.1f} GFLOP/s (median of {args.runs}: {med * 1e3:.2f} ms; "
                  f"best {flops / times[0] / 1e9:.1f} GFLOP/s)", flush=True)


if __name__ == "__main__":
    main()
