"""The sweep figure: HM against the swept value, written beside the sweep table."""
import json
import math

import pytest

from sar_prompt.results import sweep_table as sweep

pytest.importorskip("matplotlib")


def rows(points, key="SAR.WEIGHT"):
    out = []
    for i, value in enumerate(points):
        cells = {"dtd": {"base": 80.0 - i, "new": 50.0 + 2 * i, "hm": None, "n": 3},
                 "eurosat": {"base": 90.0 - i, "new": 60.0 + i, "hm": None, "n": 3}}
        for c in cells.values():
            c["hm"] = 2 * c["base"] * c["new"] / (c["base"] + c["new"])
        base = (cells["dtd"]["base"] + cells["eurosat"]["base"]) / 2
        new = (cells["dtd"]["new"] + cells["eurosat"]["new"]) / 2
        out.append({"point": f"{key}={value}", "cells": cells, "protocol": "base2new",
                    "average": {"base": base, "new": new, "hm": 2 * base * new / (base + new)},
                    "missing": 0, "trainer": "CoOpSAR", "seeds": [1, 2, 3], "folders": {}})
    return out


def test_a_numeric_sweep_is_drawn_against_its_values_with_the_average():
    drawn, xlabel = sweep.figure_rows(rows(["0.5", "1", "10"]))
    assert xlabel == "SAR.WEIGHT"
    assert [r["value"] for r in drawn] == [0.5, 1.0, 10.0]
    assert set(drawn[0]["datasets"]) == {"dtd", "eurosat", "average"}
    assert drawn[2]["datasets"]["dtd"][1] == 54.0  # (base, new, hm): new of the third point


def test_points_of_several_keys_are_drawn_by_rank():
    mixed = rows(["1"]) + rows(["2"], key="SAR.NUM_NOVEL")
    drawn, xlabel = sweep.figure_rows(mixed)
    assert xlabel == "sweep point" and [r["value"] for r in drawn] == [0, 1]
    assert drawn[1]["label"] == "SAR.NUM_NOVEL=2"


def test_save_writes_the_tables_and_the_figure_in_three_formats(tmp_path):
    from test_sweep_table import write_sweep

    write_sweep(tmp_path / "runs", shots=16)
    found = sweep.points_on_disk(tmp_path / "runs", "base2new", "CoOpSAR", ["dtd", "eurosat"],
                                 [16])
    table = sweep.sweep_table(tmp_path / "runs", "base2new", "CoOpSAR", found)
    paths = sweep.save(table, "CoOpSAR", tmp_path, "sweep_base2new_CoOpSAR")
    names = {p.name for p in map(__import__("pathlib").Path, paths)}
    for ext in ("md", "tex", "csv", "json", "png", "pdf", "svg"):
        assert f"sweep_base2new_CoOpSAR.{ext}" in names
    assert (tmp_path / "sweep_base2new_CoOpSAR.png").stat().st_size > 1000
    drawn, xlabel = sweep.figure_rows(json.loads((tmp_path / "sweep_base2new_CoOpSAR.json")
                                                 .read_text()))
    assert xlabel == "SAR.WEIGHT" and [r["value"] for r in drawn] == [0.0, 1.0, 5.0]
    assert drawn[2]["std"]["dtd"][1] == pytest.approx((2 / 3) ** 0.5)  # new's std, weight 5


# The figure itself, as plot_sweep draws it (kept open instead of saved)
@pytest.fixture
def draw(monkeypatch):
    import matplotlib.pyplot as plt

    from sar_prompt.results import sweep_plot

    figures = []
    monkeypatch.setattr(sweep_plot, "_save", lambda fig, plt, path: figures.append(fig) or [])

    def drawn(points, **options):
        sweep_plot.plot_sweep(points, "unused", **options)
        return figures[-1]

    yield drawn
    plt.close("all")


# (base, new, hm) per dataset at weights 0, 1, 5 (given out of order); EuroSAT with stds
DTD = {0: (80.0, 72.0, 75.79), 1: (79.0, 71.5, 75.06), 5: (78.0, 74.0, 75.95)}
EUROSAT = {0: (90.0, 80.0, 84.71), 1: (91.0, 82.0, 86.27), 5: (89.0, 85.0, 86.95)}


def sweep_points(labels=("0", "1", "5")):
    return [{"label": label, "value": value,
             "datasets": {"dtd": DTD[value], "eurosat": EUROSAT[value]},
             "std": {"eurosat": (0.5, 1.0, 0.7)}}
            for label, value in sorted(zip(labels, (0, 1, 5)), key=lambda p: -p[1])]


def lines_by_dataset(ax):
    """{legend label: the data line of its error bar container}."""
    return {c.get_label(): c.lines[0] for c in ax.containers}


@pytest.mark.parametrize("metric, index, name", [("base", 0, "Base"), ("new", 1, "New"),
                                                 ("hm", 2, "HM")])
def test_the_sweep_figure_draws_the_chosen_metric_and_its_average(draw, metric, index, name):
    import statistics

    from sar_prompt.results.aggregate import harmonic_mean

    fig = draw(sweep_points(), metric=metric)
    top, bottom = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((3.3, 2.9))
    assert bottom.get_position().height / top.get_position().height == pytest.approx(2.3)
    assert top.get_shared_x_axes().joined(top, bottom)
    assert fig._supylabel.get_text() == f"{name} accuracy (%)"
    assert bottom.get_xlabel() == "swept value" and top.get_ylabel() == "Average"
    lines = lines_by_dataset(bottom)
    assert list(lines) == ["DTD", "EuroSAT"]
    for d, values in (("DTD", DTD), ("EuroSAT", EUROSAT)):
        assert list(lines[d].get_ydata()) == [values[v][index] for v in (0, 1, 5)]
    base = [statistics.fmean((DTD[v][0], EUROSAT[v][0])) for v in (0, 1, 5)]
    new = [statistics.fmean((DTD[v][1], EUROSAT[v][1])) for v in (0, 1, 5)]
    average = [(b, n, harmonic_mean(b, n))[index] for b, n in zip(base, new)]
    (mean_line,) = top.get_lines()
    assert list(mean_line.get_ydata()) == pytest.approx(average)
    # its own axis, one point of margin on a 1-point grid: a 1-point change shows
    lo, hi = math.floor(min(average) - 0.5), math.ceil(max(average) + 0.5)
    assert top.get_ylim() == (lo, hi)
    assert all(lo <= t <= hi for t in top.get_yticks()) and len(top.get_yticks()) >= 2
    assert all(g.get_visible() for ax in (top, bottom) for g in ax.get_ygridlines())
    # the average stands out: a heavier line and larger markers than any dataset's
    assert all(mean_line.get_linewidth() > line.get_linewidth()
               and mean_line.get_markersize() > line.get_markersize()
               for line in lines.values())


def test_the_sweep_figures_axes_hold_every_point_and_error_bar(draw):
    fig = draw(sweep_points(), metric="new")
    _, bottom = fig.axes
    assert bottom.get_xlim() == (-0.5, 2.5)
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0", "1", "5"]
    assert list(bottom.get_xticks()) == [0, 1, 2]
    # lowest: DTD's 71.5 (no std) less the 1-point pad, on a 5-point grid: 70;
    # highest: EuroSAT's 85 + 1.0 (std) + 1: 87 -> 90
    assert bottom.get_ylim() == (70.0, 90.0)
    bars = {c.get_label(): c.has_yerr for c in bottom.containers}
    assert bars == {"DTD": False, "EuroSAT": True}


@pytest.mark.parametrize("n", [2, 11])
def test_the_datasets_are_nudged_apart_around_each_point(draw, n):
    from sar_prompt.catalog import BENCHMARK

    names = [d.key for d in BENCHMARK][:n]
    points = [{"label": str(v), "value": v,
               "datasets": {d: (70.0 + i, 60.0 + v, 65.0) for i, d in enumerate(names)}}
              for v in (0, 1)]
    _, bottom = draw(points).axes
    offsets = [line.get_xdata()[1] - 1 for line in lines_by_dataset(bottom).values()]
    assert len(offsets) == n and sum(offsets) == pytest.approx(0.0, abs=1e-12)
    step = min(0.06, 0.36 / n)  # all of them within 0.36 of the point: never at the next
    assert [b - a for a, b in zip(offsets, offsets[1:])] == pytest.approx([step] * (n - 1))
    styles = [(line.get_color(), line.get_marker())
              for line in lines_by_dataset(bottom).values()]
    assert len(set(styles)) == n  # each dataset its own colour and marker pair


@pytest.mark.parametrize("labels, rotation, align", [(("a", "bbbbb", "c"), 0, "center"),
                                                     (("a", "bbbbbb", "c"), 30, "right")])
def test_point_labels_longer_than_five_characters_are_tilted(draw, labels, rotation, align):
    _, bottom = draw(sweep_points(labels)).axes
    ticks = bottom.get_xticklabels()
    assert [t.get_text() for t in ticks] == list(labels)
    assert {(t.get_rotation(), t.get_horizontalalignment()) for t in ticks} == {
        (rotation, align)}


def test_a_sweep_with_no_dataset_at_every_point_has_no_average_panel(draw):
    points = [{"value": 0, "datasets": {"dtd": DTD[0]}},
              {"value": 1, "datasets": {"eurosat": EUROSAT[1]}}]
    fig = draw(points)
    assert len(fig.axes) == 1 and tuple(fig.get_size_inches()) == pytest.approx((3.3, 2.2))
    only_average = [{"value": v, "datasets": {"average": DTD[v]}} for v in (0, 1)]
    top, _ = draw(only_average).axes
    assert list(top.get_lines()[0].get_ydata()) == [DTD[0][2], DTD[1][2]]


def test_a_sweep_with_no_points_is_refused():
    from sar_prompt.errors import ConfigError
    from sar_prompt.results.sweep_plot import plot_sweep

    with pytest.raises(ConfigError, match=r"^plot_sweep: no sweep points to plot\.$"):
        plot_sweep([], "unused")
