"""``examples/pytorch_mlp.py``: the notebook's MLP trained in plain PyTorch becomes initjax's report from its CSV
and from its TensorBoard logs, one command each, with the same verdicts (the commands of
docs/guides/your-runs.md's "From a PyTorch loop"). Runs where torch is installed (the ``peers`` extra); skipped
otherwise."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

import bench
from bench.reporting.files import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch_mlp.py"


def _example():
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[peers]')")
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tensorboard]')")
    spec = importlib.util.spec_from_file_location("pytorch_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pytorch_example_becomes_a_report_from_its_csv_and_from_its_tensorboard_logs(tmp_path, capsys):
    example = _example()
    out, logs = tmp_path / "pytorch", tmp_path / "tb"
    assert example.main(["--out", str(out), "--seeds", "4", "--epochs", "3", "--initializers",
                         "he_normal,glorot_uniform,zeros", "--tensorboard", str(logs)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 3 * 4 * 4 and set(runs["epoch"]) == {0, 1, 2, 3}
    report = (out / "report" / "report.md").read_text()
    assert "| test set | its sampling error is in the intervals" in report and "synthetic m = 200" in report
    results, record = load(out / "report")
    assert record.external and record.paired() and record.tasks["synthetic"].model == example.MODEL
    from_csv = bench.analyze(runs, arm="init", seed="seed", epoch="epoch", metric="test_accuracy", paired=True)
    from_logs = bench.analyze(logs, layout="{init}/seed{seed}", arm="init", seed="seed", epoch="step",
                              metric="test/accuracy", paired=True)
    verdicts = [dict(zip(o.analysis.comparisons["arm"], o.analysis.comparisons["verdict"])) for o in (from_csv,
                                                                                                      from_logs)]
    assert verdicts[0] == verdicts[1] and verdicts[0]["zeros"] == "worse"  # a network of zeros learns nothing
    csv_means = from_csv.summary.set_index("arm")["mean"]
    pd.testing.assert_series_equal(csv_means, from_logs.summary.set_index("arm")["mean"].reindex(csv_means.index),
                                   rtol=1e-6)  # TensorBoard stores float32
    with pytest.raises(SystemExit):  # a second run into the same logs would repeat every step
        example.main(["--out", str(out), "--seeds", "2", "--epochs", "1", "--tensorboard", str(logs)])
    capsys.readouterr()
