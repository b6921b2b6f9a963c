"""Report pictures and tables: what they show (bars, ticks, headers), not just that a file appears."""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from protein_sedd.evaluation.reports import histogram_figure, histogram_png, rows_table
from protein_sedd.training.metrics import COLUMNS, MetricsLog, loss_curve_figure, plot_loss_curve


def _bars(figure) -> list[tuple[float, float, float]]:
    """(left edge, width, height) of every histogram bar."""
    return [(p.get_x(), p.get_width(), p.get_height()) for p in figure.axes[0].patches]


def test_every_design_at_zero_bits_is_one_visible_bar_at_zero():
    figure = histogram_figure([0.0] * 5, title="t", xlabel="bits", threshold=25.0)
    filled = [bar for bar in _bars(figure) if bar[2] > 0]
    assert len(filled) == 1
    left, width, height = filled[0]
    assert height == 5 and left == pytest.approx(0.0, abs=1e-9)  # the bar starts at 0 bits
    assert width >= 25.0 / 30 - 1e-9  # an ordinary bin of the axis that reaches the threshold line
    assert figure.axes[0].get_xlim()[1] >= 25.0  # the threshold line is on the axis


def test_one_repeated_value_without_threshold_is_not_zero_wide():
    (bar,) = [b for b in _bars(histogram_figure([3.0, 3.0], title="t", xlabel="x")) if b[2] > 0]
    assert bar[1] > 0 and bar[0] <= 3.0 < bar[0] + bar[1]


def test_count_axis_has_whole_number_ticks():
    figure = histogram_figure([10.0, 40.0, 41.0], title="t", xlabel="bits", threshold=25.0)
    ticks = [t for t in figure.axes[0].get_yticks() if 0 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_histogram_png_writes_a_png_and_no_temporary_file(tmp_path):
    histogram_png(tmp_path / "h.png", [0.0, 0.0], title="t", xlabel="x", threshold=25.0)
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]


def _row(step, **values):
    return {"step": str(step), **{c: "" for c in COLUMNS if c != "step"}, **values}


def test_loss_curve_of_a_short_run_has_whole_step_ticks_and_reads_old_logs(tmp_path):
    new = [
        _row(1, train_loss="4.3"),
        _row(2, train_loss="4.1", valid_bits_per_residue="4.0"),
        _row(3, train_loss="3.9"),
    ]
    # metrics.csv from before one-row-per-step: a training row and a validation row for step 2
    old = [_row(1, train_loss="4.3"), _row(2, train_loss="4.1"), _row(2, valid_bits_per_residue="4.0"),
           _row(3, train_loss="3.9")]  # fmt: skip
    for rows in (new, old):
        axes = loss_curve_figure(rows).axes[0]
        train, valid = axes.get_lines()
        assert list(train.get_xdata()) == [1, 2, 3] and list(valid.get_xdata()) == [2]
        low, high = axes.get_xlim()
        assert all(float(t).is_integer() for t in axes.get_xticks() if low <= t <= high)
    metrics = tmp_path / "metrics.csv"
    log = MetricsLog(metrics)
    for row in old:
        log.append(**row)
    MetricsLog(metrics, resume_from_step=2)  # --resume from step 2 drops the later rows, old layout or not
    assert [r["step"] for r in MetricsLog.read(metrics)] == ["1", "2", "2"]
    plot_loss_curve(metrics, tmp_path / "loss_curve.png")
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_curve.png", "metrics.csv"]


@pytest.mark.parametrize("width", [80, 100])
def test_seq_eval_table_keeps_its_column_names_whole(width):
    frame = pd.DataFrame(
        {
            "id": ["design_0007", "design_0012"],
            "length": [112, 98],
            "family_bits": [114.9, 0.0],
            "nearest_identity": [0.505, 0.92],
            "nearest_id": ["tr|A0A2N5VJ31|A0A2N5VJ31_9BACT Acylphosphatase OS=Bacteria", "sp|P07311|ACYP1"],
            "exact_copy": [False, True],
        }
    )
    console = Console(width=width, record=True)
    console.print(rows_table("closest", frame, list(frame.columns)))
    text = console.export_text()
    assert "…" not in text
    for name in ("length", "family_bits", "nearest_identity", "exact_copy"):
        assert name in text
    assert "ACYP1" in text and max(len(line) for line in text.splitlines()) <= width
