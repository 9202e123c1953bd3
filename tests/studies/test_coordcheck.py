"""The coordinate check: its measurements against numpy, and the slopes the math predicts for each parameterization
(``bench.studies.coordcheck``'s table) on a real dataset."""

import jax
import numpy as np
import pytest

import initjax
from bench import cli, data, models
from bench.studies import coordcheck
from bench.training import initialization, seeding

WIDTHS = (64, 256, 1024)


@pytest.fixture(scope="module")
def adam(tmp_path_factory):
    from tests.helpers import computed_once

    setup = coordcheck.Setup(optimizer="adam", lr=1e-2, steps=2, seeds=2)
    return setup, computed_once(tmp_path_factory, "coordcheck-adam",
                                lambda _: coordcheck.run(setup, ("sp", "ntk", "mup"), WIDTHS))[0]


def _slope(slopes, p, layer, step):
    return slopes.set_index(["parameterization", "layer", "step"])["slope"][p, layer, step]


def test_step_zero_is_the_drawn_network_measured_by_hand(adam):
    setup, table = adam
    d = data.load(setup.dataset)
    model = models.build("mlp", d.input_shape, d.n_classes, (64, 64), "relu", parameterization="mup", base_width=64)
    keys, _ = seeding.run_keys(0, d.name, [0, 1])
    params = jax.tree.map(lambda leaf: np.asarray(leaf[0, 1], np.float64),
                          initialization.init_params(model, [initjax.get("lecun_normal")], keys, d.input_shape))
    h = d.x_train[:coordcheck.PROBE].astype(np.float64)
    expected = []
    for i in range(3):
        h = h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"]
        expected.append(np.sqrt(np.mean(h**2)))
        h = np.maximum(h, 0)
    rows = table[(table.parameterization == "mup") & (table.width == 64) & (table.seed == 1) & (table.step == 0)]
    np.testing.assert_allclose(rows.set_index("layer").loc[["input", "hidden_1", "output"], "rms"], expected,
                               rtol=1e-5)
    assert (rows["update_rms"] == 0).all()


def test_adam_slopes_are_the_ones_the_math_predicts(adam):
    _, table = adam
    updates, outputs = coordcheck.slopes(table, "update_rms"), coordcheck.slopes(table, "rms")
    for step in (1, 2):
        for layer in ("input", "hidden_1", "output"):
            assert abs(_slope(updates, "mup", layer, step)) < 0.15, (layer, step)  # width-stable
        # SP: Adam moves every matrix entry by ~lr, so a layer summing n of them moves ~n
        assert _slope(updates, "sp", "output", step) > 0.8 and _slope(updates, "sp", "hidden_1", step) > 0.6
        assert abs(_slope(updates, "sp", "input", step)) < 0.15
        # NTK: the features barely move (~n^-1/2), the logits move ~1
        assert -0.65 < _slope(updates, "ntk", "hidden_1", step) < -0.35
        assert abs(_slope(updates, "ntk", "output", step)) < 0.15
    assert -0.6 < _slope(outputs, "mup", "output", 0) < -0.4  # muP's logits start at ~n^-1/2
    assert abs(_slope(outputs, "sp", "output", 0)) < 0.1
    summary = coordcheck.summary(table)
    assert summary.loc["mup", "output"] == pytest.approx(_slope(updates, "mup", "output", 2))


@pytest.mark.slow  # a second optimizer: the second CI step
def test_sgd_slopes_are_the_ones_the_math_predicts(tmp_path):
    out = tmp_path / "coord"
    assert cli.main(["coordcheck", "--optimizer", "sgd", "--lr", "0.1", "--widths", "64,256,1024", "--steps", "2",
                     "--seeds", "2", "--parameterizations", "sp,mup", "--out", str(out)]) == 0
    import pandas as pd

    slopes = pd.read_csv(out / "slopes.csv")
    updates = slopes[slopes.statistic == "update_rms"]
    for layer in ("input", "hidden_1", "output"):
        assert abs(_slope(updates, "mup", layer, 2)) < 0.15
    assert 0.15 < _slope(updates, "sp", "hidden_1", 1) < 0.65  # ~n^1/2
    assert _slope(updates, "sp", "output", 1) > 0.6  # ~n
    assert -0.65 < _slope(updates, "sp", "input", 1) < -0.35  # ~n^-1/2
    text = (out / "coordcheck.md").read_text()
    assert "## Their updates h_t - h_0" in text and (out / "coordcheck-update_rms.png").is_file()


def test_bad_coordcheck_input_is_a_one_line_error(capsys):
    assert cli.main(["coordcheck", "--widths", "64"]) == 2
    assert "at least two distinct widths" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--parameterizations", "sp,mu"]) == 2
    assert "unknown parameterization 'mu'" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--dataset", "markov", "--widths", "64,128", "--out", "/nonexistent/x"]) == 2
    assert "not a classification dataset" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--model", "transformer", "--dataset", "digits", "--widths", "16,32"]) == 2
    assert "needs a token language" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--model", "transformer", "--widths", "16,30"]) == 2
    assert "multiples of 4" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--model", "cnn"]) == 2
    assert "unknown coordinate-check model 'cnn'" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--depths", "2,4", "--model", "mlp"]) == 2
    assert "over depth needs a residual model (resmlp or transformer), not 'mlp'" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--depths", "1,4"]) == 2
    assert "--depths must be >= 2 blocks" in capsys.readouterr().err
    assert cli.main(["coordcheck", "--depths", "2,4", "--widths", "64,128"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("model, expected", [
    ("transformer", {"embedding": "embedding", "block_0": "first_block", "block_2": "last_block",
                     "attn_logits_2": "last_attn_logits", "output": "output"}),
    ("resmlp", {"stem": "stem", "block_0": "first_block", "block_2": "last_block", "output": "output"}),
])
def test_a_depth_sweep_compares_the_layers_every_depth_has_by_their_place(model, expected):
    """Of a 3-block model's coordinates, the depth sweep keeps the embedding's (or stem's), the first and the last
    block's stream, the transformer's last attention logits and the logits, named alike at every depth."""
    options = {"heads": coordcheck.HEADS} if model == "transformer" else {}
    shape, classes = ((16,), 16) if model == "transformer" else ((64,), 10)
    built = models.build(model, shape, classes, (32,) * 3, "relu", **options)
    assert coordcheck.depth_layers(coordcheck.layer_names(built), 3) == expected


def test_over_depth_the_depth_rules_hold_the_last_blocks_stream_where_mup_alone_grows(tmp_path):
    """ResMLP of width 32 at 2 and 8 blocks (base depth 2), Adam, one step: at initialization the stream after
    the last block grows with depth under muP alone (slope 0.53 against log depth: each pre-activation block adds a
    branch of the stream's size) and its first update faster (1.09), while under Depth-muP (branches times
    (L/2)^-1/2) and CompleteP ((L/2)^-1) both stay within 0.15 of flat (0.07 and -0.07; updates 0.02 and -0.13); the
    stem is the same draw at every depth.
    The report names the slopes against log depth."""
    names = ("mup", "depth_mup", "completep")
    setup = coordcheck.setup_from(names, (2, 8), model="resmlp", sweep="depth", base_width=32, steps=1, seeds=2)
    table = coordcheck.run(setup, names, (2, 8))  # two depths: a slope each, 6 programs where 3 depths took 9
    assert setup.base_depth == 2 and set(table["depth"]) == {2, 8} and set(table["width"]) == {32}
    assert list(dict.fromkeys(table["layer"])) == ["stem", "first_block", "last_block", "output"]
    outputs, updates = coordcheck.slopes(table, "rms"), coordcheck.slopes(table, "update_rms")
    assert _slope(outputs, "mup", "last_block", 0) > 0.4 and _slope(updates, "mup", "last_block", 1) > 0.7
    for name in names:
        assert abs(_slope(outputs, name, "stem", 0)) < 1e-6, name
    for name in ("depth_mup", "completep"):
        assert abs(_slope(outputs, name, "last_block", 0)) < 0.15, name
        assert abs(_slope(updates, name, "last_block", 1)) < 0.15, name
    coordcheck.write(setup, table, tmp_path, "python -m bench coordcheck --depths 2,8")
    text = (tmp_path / "coordcheck.md").read_text()
    assert text.startswith("# Coordinate check over depth: digits, ResMLP with L residual blocks")
    assert "Slope of log RMS against log depth" in text and "| completep " in text
