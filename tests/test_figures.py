"""The figures as a paper prints them: nothing cut by the axis limits, each XSAR drawn with
its X, the delta figure with Base and error bars at its promised width, the sweep's lines
clear of the average, and the diagnostic's labelled blocks and difference panel."""
import statistics

import pytest

from sar_prompt.catalog import BENCHMARK
from sar_prompt.results import build_table
from sar_prompt.results import plots, sweep_plot
from test_results import write, write_grid

pytest.importorskip("matplotlib")


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, kept (and still written)."""
    figures = []
    save = plots._save

    def keep(fig, plt, stem):
        figures.append(fig)
        return save(fig, plt, stem)

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(sweep_plot, "_save", keep)
    return figures


def png_width_in(paths):
    from PIL import Image

    png = next(p for p in paths if p.suffix == ".png")
    return Image.open(png).size[0] / 300


def test_markers_near_100_and_their_error_bars_are_not_cut(tmp_path, drawn):
    for seed, (base, new) in {1: (99.0, 70.0), 2: (99.6, 72.0), 3: (100.0, 74.0)}.items():
        for trainer, shift in (("CoOp", 0.0), ("CoOpSAR", -0.4)):
            write(tmp_path, "train_base", seed, base + shift, "caltech101", trainer)
            write(tmp_path, "test_new", seed, new, "caltech101", trainer)
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"])
    coop = table.lookup(table.entries, "CoOp", "caltech101", 16, "base")
    plots.plot_table(table, tmp_path / "fig")
    ax = drawn[-1].axes[0]
    assert ax.get_xlim()[1] >= coop.mean + coop.std + 0.5  # the marker and its bar whole
    assert max(ax.get_xticks()) <= 100  # while the ticks stop at 100
    assert plots.accuracy_limits([(99.5, 0.8), (60.0, 1.0)]) == (55, pytest.approx(101.8))
    assert plots.accuracy_limits([(50.0, 0.0), (80.0, 0.0)]) == (45, 85)


def test_each_sar_variant_is_drawn_with_its_method(tmp_path, drawn):
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0),
                          "ZeroshotCLIP": (70.0, 74.0)}, datasets=("dtd",))
    table = build_table(tmp_path, "base2new", ["ZeroshotCLIP", "CoOp", "CoOpSAR"])
    table.labels = {"CoOpSAR": "CoOp + SAR"}
    assert plots.marker_groups(table) == [[("ZeroshotCLIP", True)],
                                          [("CoOp", False), ("CoOpSAR", True)]]
    plots.plot_table(table, tmp_path / "fig")
    new = drawn[-1].axes[1]  # the New panel: CoOp (62) joined to CoOp + SAR (68) on DTD
    bars = [line for line in new.lines if list(line.get_xdata()) == [62.0, 68.0]]
    assert len(bars) == 2  # and on the average row
    legend = [t.get_text() for t in drawn[-1].legends[0].get_texts()]
    assert legend == ["ZeroshotCLIP (zero-shot)", "CoOp", "CoOp + SAR"]
    hollow, filled = (c[0] for c in new.containers[1:3])  # errorbar containers: markers first
    assert hollow.get_markerfacecolor() == "white" and filled.get_markerfacecolor() != "white"
    assert hollow.get_color() == filled.get_color()  # one colour per pair


def write_paired(root, datasets, trainers):
    """Per seed, each trainer's new accuracy: its own numbers, so that the per-seed
    differences are known."""
    for dataset in datasets:
        for trainer, news in trainers.items():
            for seed, new in zip((1, 2, 3), news):
                write(root, "train_base", seed, 80.0, dataset, trainer)
                write(root, "test_new", seed, new, dataset, trainer)


def test_the_delta_figure_has_base_and_error_bars_at_its_width_on_eleven_datasets(tmp_path,
                                                                                 drawn):
    eleven = [d.key for d in BENCHMARK]
    write_paired(tmp_path, eleven, {"CoOp": (60.0, 62.0, 64.0), "CoOpSAR": (63.0, 64.0, 68.0),
                                    "KgCoOp": (70.0, 70.0, 70.0),
                                    "KgCoOpSAR": (71.0, 72.0, 70.0),
                                    "PromptSRC": (74.0, 74.0, 74.0),
                                    "PromptSRCSAR": (75.0, 75.0, 76.0)})
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR", "KgCoOp", "KgCoOpSAR",
                                               "PromptSRC", "PromptSRCSAR"])
    delta = table.lookup(table.deltas, "CoOpSAR - CoOp", "dtd", 16, "new")
    assert delta.mean == 3.0 and delta.values == {1: 3.0, 2: 2.0, 3: 4.0}
    assert delta.std == pytest.approx(statistics.pstdev([3.0, 2.0, 4.0]))  # paired seeds
    average = table.lookup(table.deltas, "CoOpSAR - CoOp", "average", 16, "new")
    assert average.std == pytest.approx(delta.std)  # every dataset the same here
    table.labels = {t: f"{t} (ours, long label)" for t in table.trainers}
    paths = plots.plot_deltas(table, tmp_path / "delta")
    assert 3.0 <= png_width_in(paths) <= 3.45  # one column, legend and labels included
    fig = drawn[-1]
    assert [ax.get_title() for ax in fig.axes] == ["Δ Base", "Δ New", "Δ HM"]
    new = fig.axes[1]
    xerr = new.containers[0][2][0].get_segments()  # CoOpSAR - CoOp's error bars
    dtd = eleven.index("dtd")
    assert xerr[dtd][1][0] - xerr[dtd][0][0] == pytest.approx(2 * delta.std)


def test_the_sweep_figure_keeps_the_average_off_the_datasets_lines(tmp_path, drawn):
    eleven = [d.key for d in BENCHMARK]
    rows = [{"label": str(w), "value": w,
             "datasets": {d: (80.0 + i, 60.0 + i + w, 70.0 + i + w / 2)
                          for i, d in enumerate(eleven)},
             "std": {d: (0.5, 1.0, 0.7) for d in eleven}} for w in (0, 0.5, 1, 5, 50)]
    paths = sweep_plot.plot_sweep(rows, tmp_path / "sweep", xlabel="SAR.WEIGHT")
    assert 3.0 <= png_width_in(paths) <= 3.45
    average, datasets = drawn[-1].axes
    assert average.get_ylabel() == "Average" and len(average.lines) == 1
    from sar_prompt.results import harmonic_mean

    assert list(average.lines[0].get_ydata()) == pytest.approx(  # HM of the averages
        [harmonic_mean(85.0, 65.0 + w) for w in (0, 0.5, 1, 5, 50)])
    assert len(datasets.containers) == 11  # every dataset, with its error bars
    assert all(len(c[2]) == 1 for c in datasets.containers)
    assert [t.get_text() for t in datasets.get_xticklabels()] == ["0", "0.5", "1", "5", "50"]
    styles = {(c[0].get_color(), c[0].get_marker()) for c in datasets.containers}
    assert len(styles) == 11  # no two datasets look alike


def test_the_diagnostic_heatmap_labels_its_blocks_and_shows_the_difference(tmp_path, drawn):
    import numpy as np

    from sar_prompt.results.diagnose import plot_heatmaps

    rng = np.random.default_rng(0)
    for n in (6, 30):  # class names shown, and too many to show
        hand, learned = rng.uniform(0, 1, (n, n)), rng.uniform(0, 1, (n, n))
        names = [f"c{i}" for i in range(n)]
        matrices = {"base": (names[:n // 2], None, None), "new": (names[n // 2:], None, None),
                    "_joint": (names, learned, hand)}
        for difference in (False, True):
            paths = plot_heatmaps(matrices, tmp_path / f"h{n}{difference}", "CoOp / DTD",
                                  difference)
            assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
            fig = drawn[-1]
            panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
            assert [ax.get_title() for ax in panels] == (
                ["hand-crafted prompt", "learned prompt"] + (["difference"] if difference
                                                             else []))
            axes = fig.axes + [child for ax in fig.axes for child in ax.child_axes]
            labels = {t.get_text() for ax in axes for t in ax.get_xticklabels()
                      + ax.get_yticklabels()}
            assert {"base", "new"} <= labels
            if difference:
                shown = panels[2].images[0].get_array()
                assert np.allclose(shown, learned - hand)
                low, high = panels[2].images[0].get_clim()
                assert low == -high  # centred on no change
