"""How a chunk's models are batched (bench.training.batching): the rule, the sequential map against vmap, the plan's
memory, and a conv net trained by the suite against the same runs one at a time."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bench
import initjax
from bench import models
from bench.training import batching, conv_lowering, memory
from bench.training.train import TrainConfig, batching_of, train_task


def _images(n=48, side=8):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, side, side, 1)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)
    return bench.data.arrays(x[: n * 2 // 3], y[: n * 2 // 3], x[n * 2 // 3:], y[n * 2 // 3:], name="images")


CONV = models.conv.ConvNet((((4, 3, "SAME"),), ((8, 3, "SAME"),)), (16,), 3)


def test_the_rule_lowers_convolutions_maps_the_others_and_vmaps_the_rest(monkeypatch):
    monkeypatch.delenv(batching.ENV, raising=False)
    mlp = models.build("mlp", (64,), 10, (32,), "relu")
    lowered, plain, mapped = batching.Batching(matmuls=True), batching.ALL_AT_ONCE, batching.Batching(sequential=True)
    heavy = batching.Batching(sequential=True, matmuls=True)
    lenet = models.build("lenet", (28, 28, 1), 10, (), "relu", norm="batch")
    assert batching_of(CONV, (8, 8, 1), 32) == lowered  # 0.3 MFLOP a step: the batched products win
    assert batching_of(lenet, (28, 28, 1), 2) == lowered
    assert batching_of(lenet, (28, 28, 1), 32) == heavy  # 80 MFLOP a step: one model after the other wins
    assert batching_of(mlp, (64,), 32) == plain
    assert batching_of(models.build("transformer", (8,), 6, (16,), "gelu", heads=2), (8,), 32) == plain
    assert batching_of(DepthwiseNet(), (8, 8, 2), 1) == heavy  # feature groups: no patches, never vmapped
    monkeypatch.setenv(batching.ENV, "vmap")
    assert batching_of(CONV, (8, 8, 1), 32) == plain
    monkeypatch.setenv(batching.ENV, "sequential")
    assert batching_of(mlp, (64,), 32) == mapped


def test_a_steps_flops_are_xlas_count_of_the_forward_pass_three_times():
    """A 3x3 convolution, 'same' padding, on 8x8 inputs into 4 features: 22 x 22 (position, tap) pairs inside the
    image (per axis 2 + 6 x 3 + 2), 2 FLOPs each per output feature; backward twice the forward."""
    def conv(w, x):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    args = (jax.ShapeDtypeStruct((3, 3, 1, 4), jnp.float32), jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32))
    assert batching.step_flops(conv, args, 5) == 3 * 22 * 22 * 4 * 2 * 5


class DepthwiseNet(nn.Module):
    """A depthwise convolution (feature groups), which the patches do not express, then an ordinary one."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(x.shape[-1], (3, 3), feature_group_count=x.shape[-1])(x)
        return nn.Dense(3)(nn.Conv(4, (3, 3))(x).reshape(x.shape[0], -1))


def test_a_convolution_inside_a_scan_or_a_jit_is_found_and_lowered():
    def forward(w, x):
        inner = jax.jit(lambda x: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME"))
        return jax.lax.scan(lambda c, _: (inner(c), None), x, None, length=2)[0]

    args = (jax.ShapeDtypeStruct((1, 1, 3, 3), jnp.float32), jax.ShapeDtypeStruct((2, 1, 5, 5), jnp.float32))
    assert conv_lowering.count(forward, *args) == (1, 0)
    assert batching.choose(lambda w, x: x * w.sum(), args) == batching.ALL_AT_ONCE
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(1, 1, 3, 3)).astype(np.float32), rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(conv_lowering.lowered(forward)(w, x), forward(w, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("layout", "strides", "padding", "dilation"), [
    (("NHWC", "HWIO", "NHWC"), (1, 1), "SAME", (1, 1)),
    (("NHWC", "HWIO", "NHWC"), (2, 1), "VALID", (1, 1)),
    (("NCHW", "OIHW", "NCHW"), (1, 2), ((1, 2), (0, 1)), (2, 1)),
])
def test_a_convolution_as_a_product_of_patches_equals_xlas_with_its_gradients(layout, strides, padding, dilation):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 7, 3) if layout[0] == "NHWC" else (2, 3, 9, 7)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 5) if layout[1] == "HWIO" else (5, 3, 3, 2)).astype(np.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, dimension_numbers=layout)

    def loss(fn):
        return lambda x, w: (fn(x, w) ** 2).sum()

    np.testing.assert_allclose(conv_lowering.lowered(conv)(x, w), conv(x, w), rtol=1e-5, atol=1e-5)
    for ours, xla in zip(jax.grad(loss(conv_lowering.lowered(conv)), (0, 1))(x, w), jax.grad(loss(conv), (0, 1))(x, w)):
        np.testing.assert_allclose(ours, xla, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("layout", "strides", "padding", "dilation", "patches"), [
    (("NHWC", "HWIO", "NHWC"), (1, 1), "SAME", (1, 1), 2 * 9 * 7 * (3 * 3 * 2)),  # out 9x7, window 3x2, 3 inputs
    (("NHWC", "HWIO", "NHWC"), (2, 1), "VALID", (1, 1), 2 * 4 * 6 * (3 * 3 * 2)),  # (9-3)//2+1=4, 7-2+1=6
    (("NCHW", "OIHW", "NCHW"), (1, 2), ((1, 2), (0, 1)), (2, 1), 2 * 8 * 4 * (3 * 3 * 2)),  # 9+3-5+1=8, (8-2)//2+1=4
])
def test_the_patches_of_a_convolution_are_counted_by_hand(layout, strides, padding, dilation, patches):
    x = jax.ShapeDtypeStruct((2, 9, 7, 3) if layout[0] == "NHWC" else (2, 3, 9, 7), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 2, 3, 5) if layout[1] == "HWIO" else (5, 3, 3, 2), jnp.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, dimension_numbers=layout)

    assert conv_lowering.patch_bytes(conv, x, w) == 4 * patches
    grouped = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=3)  # noqa: E731
    assert conv_lowering.patch_bytes(grouped, jax.ShapeDtypeStruct((1, 3, 5, 5), jnp.float32),
                                     jax.ShapeDtypeStruct((6, 1, 3, 3), jnp.float32)) == 0  # not lowered


def test_an_evaluation_chunk_holds_no_more_than_the_training_step():
    mib = 2**20
    assert memory.evaluation_chunk(1000, 10 * mib, 32, 2048) == 2048  # small examples: as asked
    assert memory.evaluation_chunk(mib, 10 * mib, 32, 2048) == memory.EVAL_BYTES // mib  # 64 MiB of 1 MiB examples
    assert memory.evaluation_chunk(mib, 200 * mib, 32, 2048) == 200  # the training step holds more: as much
    assert memory.evaluation_chunk(100 * mib, 200 * mib, 32, 2048) == 32  # never under a minibatch
    assert memory.evaluation_chunk(100 * mib, 200 * mib, 32, 16) == 16  # nor over what was asked


def test_a_conv_nets_footprint_bounds_what_xla_reserves_for_its_step_and_its_evaluation():
    """One model of a conv net whose convolutions are products of patches: the estimate from shapes (its
    patches, the patches' gradients and every kept activation counted) bounds XLA's own figure for a training step
    and for an evaluation chunk, and not loosely."""
    from bench.studies import perf
    from bench.training import step
    from bench.training.train import OPTIMIZERS

    model = perf.setup_model(perf.WORKLOADS["mnist-cnn"])
    optimizer = OPTIMIZERS["momentum"](0.1)
    fp = memory.footprint(model, (28, 28, 1), optimizer, 128, 2048, matmuls=True)
    plain = memory.footprint(model, (28, 28, 1), optimizer, 128, 2048)
    assert fp.train > plain.train and fp.eval_bound and fp.eval_chunk < 2048
    forward = step.forward_of(model, (28, 28, 1), matmuls=True)
    params, model_state = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x),
                                         jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))
    state = step.RunState(params, jax.eval_shape(optimizer.init, params), model_state)
    loss_fn = models.losses.softmax_cross_entropy

    def xla_bytes(fn, *args):
        stats = jax.jit(fn).lower(*args).compile().memory_analysis()
        return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes

    def batch(n):
        return (jax.ShapeDtypeStruct((n, 28, 28, 1), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.int32),
                jax.ShapeDtypeStruct((n,), jnp.float32))

    train = xla_bytes(step.make_step(forward, loss_fn, optimizer), state, *batch(128))
    evaluate = xla_bytes(step.make_sums(forward, loss_fn), state, *batch(fp.eval_chunk))
    assert train <= fp.train <= 2 * train, (train, fp.train)
    assert evaluate <= fp.eval + fp.state <= 2 * evaluate, (evaluate, fp.eval)


def test_the_sequential_map_is_vmap_one_slice_at_a_time():
    rng = np.random.default_rng(1)
    w, x, shared = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 5)), rng.normal(size=(4,))

    def fn(w, x, shared, nothing):
        return {"y": w @ x + shared, "norm": jnp.linalg.norm(x)}

    axes = (0, 0, None, None)
    vmapped = batching.mapped(fn, axes)(w, x, shared, None)
    mapped = batching.mapped(fn, axes, sequential=True)(w, x, shared, None)
    for key in ("y", "norm"):
        np.testing.assert_allclose(mapped[key], vmapped[key], rtol=1e-6)
    assert mapped["y"].shape == (3, 4)


def test_a_sequential_chunk_is_planned_with_one_models_activations():
    fp = memory.Footprint(params=10, state=30, train=1000, eval=500)
    vmapped = memory.plan(fp, 4, 8, resident=0, budget=2**40, on_cpu=False, chunk=2)
    one_at_a_time = batching.Batching(sequential=True)
    mapped = memory.plan(fp, 4, 8, resident=0, budget=2**40, on_cpu=False, chunk=2, batching=one_at_a_time)
    assert vmapped.estimate - memory.RUNTIME_BYTES == 2 * 4 * (30 + 1000)
    assert mapped.estimate - memory.RUNTIME_BYTES == 2 * 4 * 30 + 1000
    assert mapped.batching == one_at_a_time and "one after the other" in mapped.reason
    # the CPU cache target, which caps a vmapped chunk, does not cap a sequential one
    big = memory.Footprint(params=10, state=30, train=memory.CPU_CACHE_BYTES, eval=500)
    assert memory.plan(big, 4, 64, 0, 2**40, on_cpu=True).seeds_per_chunk == 1
    assert memory.plan(big, 4, 64, 0, 2**40, on_cpu=True, batching=one_at_a_time).seeds_per_chunk == 64


def test_a_conv_net_trained_by_each_batching_equals_its_runs_alone(monkeypatch):
    """Two initializers x two seeds of a conv net with BatchNorm (its statistics a model state) in one chunk, its
    convolutions as products of patches (the rule) and as XLA's convolutions one model after the other: each run
    equals the run trained alone (to float32 rounding), and the two ways agree to float32 rounding (SGD: Adam
    would turn the rounding of a near-zero gradient into a step of the learning rate); every model vmapped as it
    is fails in JAX (the reason for the rule)."""
    data, model = _images(), CONV.clone(norm="batch")
    inits = {name: initjax.get(name) for name in ("he_normal", "orthogonal")}
    config = TrainConfig("sgd", 0.05, 8, 2)
    columns = ["train_loss", "test_loss", "test_accuracy"]

    def trained(how, seeds, chosen=inits):
        monkeypatch.setenv(batching.ENV, how) if how else monkeypatch.delenv(batching.ENV, raising=False)
        return train_task(data, model, chosen, seeds, config, progress=False, chunk=len(seeds))

    def run(result, arm="orthogonal", seed=1):
        return result.frame[(result.frame.arm == arm) & (result.frame.seed == seed)][columns].to_numpy()

    ours, mapped = trained(None, [0, 1]), trained("sequential", [0, 1])
    assert ours.plan.batching == batching.Batching(matmuls=True) and "products of patches" in ours.plan.reason
    np.testing.assert_allclose(ours.frame[columns], mapped.frame[columns], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(mapped), run(trained("sequential", [1], {"orthogonal": inits["orthogonal"]})),
                               rtol=1e-6)
    np.testing.assert_allclose(run(ours), run(trained(None, [1], {"orthogonal": inits["orthogonal"]})), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(NotImplementedError):
        trained("vmap", [0, 1])
