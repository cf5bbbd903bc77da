"""Paired comparisons over seeds (sar_prompt/results/paired.py): the numbers the world study
prints, checked against values worked out by hand."""
import json
import math

import pytest

from sar_prompt.results import paired
from sar_prompt.results.paired import Arm, describe, pair, pair_summary, t95


@pytest.fixture
def closed(monkeypatch):
    """The figures plot() closes, kept to be looked at."""
    pytest.importorskip("matplotlib")
    from sar_prompt.results.plots import _pyplot

    plt = _pyplot()
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    return figures


def test_describe_gives_the_sample_std_and_a_students_t_interval():
    d = describe([1.0, 2.0, 3.0, 4.0])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["min"] == 1.0 and d["max"] == 4.0
    assert d["std"] == pytest.approx(1.2909944)          # sqrt(5/3): n - 1 in the denominator
    assert d["ci95"] == pytest.approx(3.182 * 1.2909944 / 2)  # t(3 df) * std / sqrt(4)


def test_one_value_has_no_spread_and_none_has_no_mean():
    assert describe([7.0]) == {"n": 1, "mean": 7.0, "std": None, "ci95": None, "min": 7.0,
                               "max": 7.0}
    assert describe([]) == {"n": 0, "mean": None, "std": None, "ci95": None, "min": None,
                            "max": None}


def test_students_t_by_degrees_of_freedom_then_the_normal():
    assert t95(1) == 12.706 and t95(2) == 4.303 and t95(4) == 2.776 and t95(30) == 2.042
    assert t95(31) == 1.96 and t95(0) == 1.96
    table = [t95(df) for df in range(1, 31)]
    assert all(a > b for a, b in zip(table, table[1:])) and table[-1] > 1.96


def test_a_pair_is_taken_seed_by_seed_where_both_have_a_number():
    arm = Arm("CoOpSAR", {1: (80.0, 70.0), 2: (82.0, 72.0), 3: (81.0, None), 5: (90.0, 90.0)})
    baseline = Arm("CoOp", {1: (79.0, 71.0), 2: (80.0, 70.0), 3: (70.0, 70.0), 4: (1.0, 1.0)})
    p = pair(arm, baseline)
    assert p.label == "CoOpSAR - CoOp"
    assert p.differences["base"] == {1: 1.0, 2: 2.0}
    assert p.differences["new"] == {1: -1.0, 2: 2.0}
    # HM per seed, then the difference (not the HM of the means)
    hm = lambda b, n: 2 * b * n / (b + n)  # noqa: E731
    assert p.differences["hm"][1] == pytest.approx(hm(80, 70) - hm(79, 71))
    assert p.differences["hm"][2] == pytest.approx(hm(82, 72) - hm(80, 70))
    assert set(p.differences["hm"]) == {1, 2}


def test_a_zero_shot_baseline_is_the_same_number_for_every_seed():
    arm = Arm("CoOp", {1: (80.0, 60.0), 2: (84.0, 66.0), 3: (82.0, 63.0)})
    zero_shot = Arm("ZeroshotCLIP", {0: (70.0, 75.0)}, constant=True)
    p = pair(arm, zero_shot)
    assert p.differences["base"] == {1: 10.0, 2: 14.0, 3: 12.0}
    assert p.differences["new"] == {1: -15.0, 2: -9.0, 3: -12.0}
    # without `constant`, the seeds do not meet and nothing is paired
    assert pair(arm, Arm("ZeroshotCLIP", {0: (70.0, 75.0)})).differences["base"] == {}


def test_seeds_up_count_only_strict_gains():
    arm = Arm("X", {1: (81.0, 70.0), 2: (80.0, 70.0), 3: (79.0, 70.0), 4: (82.0, 70.0)})
    base = Arm("Y", {s: (80.0, 70.0) for s in (1, 2, 3, 4)})
    summary = pair_summary(pair(arm, base), "base")
    assert summary["up"] == 2 and summary["n"] == 4 and summary["mean"] == 0.5
    assert pair_summary(pair(arm, base), "new")["up"] == 0


def test_an_arms_summary_skips_missing_seeds():
    arm = Arm("X", {1: (80.0, 70.0), 2: (None, 72.0), 3: (84.0, 74.0)})
    assert arm.summary("base")["n"] == 2 and arm.summary("base")["mean"] == 82.0
    assert arm.summary("new")["n"] == 2 and arm.summary("new")["mean"] == 72.0
    assert Arm("ZS", {0: (70.0, 75.0)}, constant=True).value(9, "new") == 75.0
    assert Arm("X", {1: (80.0, 70.0)}).value(2, "base") is None


def study():
    coop = Arm("CoOp", {1: (80.0, 70.0), 2: (82.0, 72.0)})
    sar = Arm("CoOpSAR", {1: (81.0, 71.0), 2: (84.0, 71.0)})
    zero_shot = Arm("ZeroshotCLIP", {0: (70.0, 75.0)}, constant=True)
    return [zero_shot, coop, sar], [pair(sar, coop), pair(coop, zero_shot)]


def test_the_markdown_table_rows():
    arms, pairs = study()
    text = paired.to_markdown(arms, pairs, title="World")
    lines = text.splitlines()
    assert lines[0] == "### World"
    assert "| ZeroshotCLIP | zero-shot | 70.00 | 75.00 | 72.41 |" in lines
    assert "| CoOp | 2 | 81.00 ± 1.41 | 71.00 ± 1.41 | " in text
    # base: differences 1 and 2 -> 1.50 ± 0.71, CI 1.5 ± 12.706 * 0.7071 / sqrt(2) = ± 6.35
    row = next(line for line in lines if line.startswith("| CoOpSAR - CoOp |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2"
    assert cells[2] == "+1.50 ± 0.71 [-4.85, +7.85] (2/2 up)"
    assert cells[3] == "+0.00 ± 1.41 [-12.71, +12.71] (1/2 up)"
    row = next(line for line in lines if line.startswith("| CoOp - ZeroshotCLIP |"))
    assert "+11.00 ± 1.41" in row and "(2/2 up)" in row


def test_a_pair_with_one_seed_has_no_interval_and_none_a_dash():
    one = pair(Arm("X", {1: (81.0, 70.0)}), Arm("Y", {1: (80.0, 70.0)}))
    text = paired.to_markdown([], [one, pair(Arm("X", {1: (1.0, 1.0)}), Arm("Y", {2: (1, 1)}))])
    assert "| X - Y | 1 | +1.00 (1/1 up) | +0.00 (0/1 up) |" in text
    assert "| X - Y | 0 | - | - | - |" in text
    # an arm with no complete seed has no mean
    assert "| Z | 1 | - | - | - |" in paired.to_markdown([Arm("Z", {1: (None, 70.0)})], [])


def test_the_json_record_round_trips_and_matches_the_table():
    arms, pairs = study()
    record = json.loads(json.dumps(paired.to_json(arms, pairs)))
    sar_coop = record["pairs"][0]
    assert sar_coop["label"] == "CoOpSAR - CoOp" and sar_coop["baseline"] == "CoOp"
    assert sar_coop["arm"] == "CoOpSAR"
    assert sar_coop["differences"]["base"] == {"1": 1.0, "2": 2.0}
    assert sar_coop["summary"]["base"]["mean"] == 1.5 and sar_coop["summary"]["base"]["up"] == 2
    assert math.isclose(sar_coop["summary"]["base"]["std"], math.sqrt(0.5))
    assert record["arms"][0]["label"] == "ZeroshotCLIP"
    assert record["arms"][0]["constant"] is True and record["arms"][1]["constant"] is False
    assert record["arms"][1]["seeds"] == {"1": [80.0, 70.0], "2": [82.0, 72.0]}
    assert record["arms"][1]["summary"]["new"]["mean"] == 71.0


def test_the_figure_centres_the_differences_on_zero(tmp_path, closed):
    arms, pairs = study()
    written = paired.plot(arms, pairs, tmp_path / "study")
    assert sorted(p.name for p in written) == ["study.pdf", "study.png", "study.svg"]
    assert all(p.stat().st_size > 0 for p in written)
    (fig,) = closed
    left, right = fig.axes[:2]
    low, high = right.get_xlim()
    assert low == pytest.approx(-high) and high >= 12.0  # the largest difference is +12
    # top to bottom in the order given
    ticks = sorted(zip(right.get_yticks(), (t.get_text() for t in right.get_yticklabels())),
                   reverse=True)
    assert [label for _, label in ticks] == ["CoOpSAR - CoOp", "CoOp - ZeroshotCLIP"]
    ticks = sorted(zip(left.get_yticks(), (t.get_text() for t in left.get_yticklabels())),
                   reverse=True)
    assert [label for _, label in ticks] == ["ZeroshotCLIP", "CoOp", "CoOpSAR"]


def test_the_markdown_text_whole():
    """Every line, worked by hand: e.g. CoOp's HM per seed 74.67 and 76.68 -> 75.67 ± 1.42;
    CoOpSAR - CoOp's HM differences 1.004 and 0.280 -> +0.64 ± 0.51, CI ± 12.706 * 0.5126 /
    sqrt(2) = ± 4.61."""
    arms, pairs = study()
    assert paired.to_markdown(arms, pairs) == (
        "| Method | Seeds | Base | New | HM |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| ZeroshotCLIP | zero-shot | 70.00 | 75.00 | 72.41 |\n"
        "| CoOp | 2 | 81.00 ± 1.41 | 71.00 ± 1.41 | 75.67 ± 1.42 |\n"
        "| CoOpSAR | 2 | 82.50 ± 2.12 | 71.00 ± 0.00 | 76.31 ± 0.91 |\n"
        "\n"
        "| Paired difference | Seeds | Base | New | HM |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| CoOpSAR - CoOp | 2 | +1.50 ± 0.71 [-4.85, +7.85] (2/2 up) | +0.00 ± 1.41 "
        "[-12.71, +12.71] (1/2 up) | +0.64 ± 0.51 [-3.96, +5.25] (2/2 up) |\n"
        "| CoOp - ZeroshotCLIP | 2 | +11.00 ± 1.41 [-1.71, +23.71] (2/2 up) | -4.00 ± 1.41 "
        "[-16.71, +8.71] (0/2 up) | +3.26 ± 1.42 [-9.50, +16.02] (2/2 up) |\n"
        "\n"
        "_Mean ± sample std over seeds (HM per seed). Paired: the difference seed by seed, "
        "mean ± sample std [95% confidence interval of the mean, Student's t], and how many "
        "seeds went up. A zero-shot baseline is one evaluation, the same for every seed._\n")
    assert paired.to_markdown(arms, pairs, title="World").startswith("### World\n\n| Method |")


def test_the_figure_is_two_panels_at_twice_the_column_width_with_the_legend_on_top(
        tmp_path, closed):
    from sar_prompt.results.plots import COLUMN_WIDTH

    arms, pairs = study()
    paired.plot(arms, pairs, tmp_path / "study", metrics=("base", "new", "hm"))
    (fig,) = closed
    # 3 arms, 2 pairs: 0.3 inch a row, 0.9 for the axes' labels
    assert tuple(fig.get_size_inches()) == pytest.approx((2 * COLUMN_WIDTH, 0.3 * 3 + 0.9))
    assert len(fig.axes) == 2
    tops = []
    for ax in fig.axes:
        box = ax.get_position()
        assert 0 <= box.x0 < box.x1 <= 1 and 0 <= box.y0 < box.y1 <= 0.93
        tops.append(box.y1)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["Base", "New", "HM"]
    assert not legend.get_frame_on()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure is closed: draw it anew
    box = legend.get_window_extent(renderer).transformed(fig.transFigure.inverted())
    assert max(tops) <= box.y0 and box.y1 <= 1.0 + 1e-6  # above the panels, inside the figure
    assert box.x0 + box.x1 == pytest.approx(1.0, abs=0.02)  # centred


def test_the_figure_puts_each_seed_and_mean_where_it_belongs(tmp_path, closed):
    """Left: arms top to bottom (ZeroshotCLIP y 2, CoOp 1, CoOpSAR 0), Base 0.11 below the
    row and New 0.11 above; right: pairs (CoOpSAR - CoOp y 1, CoOp - ZeroshotCLIP 0), each
    mean with its 95% interval."""
    arms, pairs = study()
    paired.plot(arms, pairs, tmp_path / "study")
    (fig,) = closed
    left, right = fig.axes

    def points(collections):
        return sorted((round(x, 6), round(y, 6)) for c in collections
                      for x, y in c.get_offsets())

    assert points(left.collections) == sorted([
        (70, 1.89), (80, 0.89), (82, 0.89), (81, -0.11), (84, -0.11),        # base
        (75, 2.11), (70, 1.11), (72, 1.11), (71, 0.11), (71, 0.11)])         # new
    means = sorted((round(x, 6), round(y, 6)) for line in left.lines
                   for x, y in line.get_xydata())
    assert means == sorted([(70, 1.89), (81, 0.89), (82.5, -0.11),
                            (75, 2.11), (71, 1.11), (71, 0.11)])
    assert left.get_ylim() == pytest.approx((-0.6, 2.6))
    assert left.get_xlabel() == "accuracy (%): seeds (dots) and mean (bar)"

    errorbars = right.containers
    assert points(c for c in right.collections if c not in
                  [seg for e in errorbars for seg in e.lines[2]]) == sorted([
        (1, 0.89), (2, 0.89), (10, -0.11), (12, -0.11),                     # base
        (1, 1.11), (-1, 1.11), (-5, 0.11), (-3, 0.11)])                     # new
    half = 12.706 * math.sqrt(0.5) / math.sqrt(2)  # t(1) * std / sqrt(n) of (1, 2)
    bars = sorted((round(x, 4), round(y, 4)) for e in errorbars
                  for segment in e.lines[2][0].get_segments() for x, y in segment)
    assert bars == sorted((round(x, 4), round(y, 4)) for x, y in [
        (1.5 - half, 0.89), (1.5 + half, 0.89), (-12.706, 1.11), (12.706, 1.11),
        (11 - 12.706, -0.11), (11 + 12.706, -0.11), (-4 - 12.706, 0.11), (-4 + 12.706, 0.11)])
    assert right.get_ylim() == pytest.approx((-0.6, 1.6))
    assert [tuple(line.get_xdata()) for line in right.lines if line.get_linestyle() == "-"] \
        == [(0, 0)]  # the line at zero difference
    assert right.get_xlabel() == "paired difference (points): seeds, mean and 95% CI"


def test_a_pair_without_common_seeds_leaves_its_row_empty_and_one_seed_has_no_bar(
        tmp_path, closed):
    empty = pair(Arm("X", {1: (1.0, 1.0)}), Arm("Y", {2: (1.0, 1.0)}))
    one = pair(Arm("A", {1: (81.0, 70.0)}), Arm("B", {1: (80.0, 72.0)}))
    arms = [Arm("Z", {1: (None, None)}), Arm("A", {1: (81.0, 70.0)})]  # Z: nothing to draw
    paired.plot(arms, [empty, one], tmp_path / "pairs")
    left, right = closed[0].axes
    assert sorted(tuple(p) for c in left.collections for p in c.get_offsets()) == [
        (70.0, 0.11), (81.0, -0.11)]  # A's row (y 0) is drawn below Z's empty one
    (bars_base, bars_new) = right.containers
    assert [tuple(p) for c in right.collections if len(c.get_offsets()) and
            c not in (bars_base.lines[2][0], bars_new.lines[2][0])
            for p in c.get_offsets()] == [(1.0, -0.11), (-2.0, 0.11)]  # row 0: A - B
    for bars in (bars_base, bars_new):  # one seed: no interval, a bar of length 0
        ((x0, _), (x1, _)), = bars.lines[2][0].get_segments()
        assert x0 == x1
    assert [t.get_text() for t in closed[0].legends[0].get_texts()] == ["Base", "New"]
    written = paired.plot([], [empty], tmp_path / "nothing")  # nothing to draw: no legend
    assert len(written) == 3 and not closed[1].legends
