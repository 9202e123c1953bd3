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
def adam():
    setup = coordcheck.Setup(optimizer="adam", lr=1e-2, steps=2, seeds=2)
    return setup, coordcheck.run(setup, ("sp", "ntk", "mup"), WIDTHS)


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


def test_transformer_under_mup_grows_nowhere_and_under_sp_its_stream_grows():
    """Adam, one block, widths 16-128 (4 heads): SP moves the residual stream faster as it widens (each step moves a
    matrix's entries by ~lr; slope 0.36 and 0.50 in steps 1 and 2 here, 1.4-1.6 at widths 32-512 in 5); muP moves no
    coordinate more at a larger width. muP's attention logits q.k/d start at ~n^-1/2 (independent q
    and k), and the measured layers are the embedding output, each block's stream and attention logits, and the
    logits."""
    setup = coordcheck.setup_from(("sp", "mup"), (16, 128), model="transformer", dataset=coordcheck.TRANSFORMER_DATA,
                                  base_width=16, depth=1, steps=2, seeds=2, activation="gelu")
    table = coordcheck.run(setup, ("sp", "mup"), (16, 128))
    assert list(dict.fromkeys(table["layer"])) == ["embedding", "block_0", "attn_logits_0", "output"]
    updates, outputs = coordcheck.slopes(table, "update_rms"), coordcheck.slopes(table, "rms")
    for step in (1, 2):
        for layer in ("embedding", "block_0", "attn_logits_0", "output"):
            assert _slope(updates, "mup", layer, step) < 0.15, (layer, step)
        for block in ("block_0",):  # SP's stream moves faster at every width step (0.4-0.5 here)
            assert _slope(updates, "sp", block, step) > max(0.3, _slope(updates, "mup", block, step) + 0.3)
    assert -0.65 < _slope(outputs, "mup", "attn_logits_0", 0) < -0.35
    assert abs(_slope(outputs, "sp", "attn_logits_0", 0)) < 0.15  # q.k/sqrt(d): width-stable at init
