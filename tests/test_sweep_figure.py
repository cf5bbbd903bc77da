"""The sweep figure: HM against the swept value, written beside the sweep table."""
import json

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
