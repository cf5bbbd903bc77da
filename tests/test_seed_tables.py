"""The per-seed tables scripts/base2new.sh and `results FOLDER` print, line by line, against
values worked by hand (a table a user copies from should hold no surprise)."""
from sar_prompt.results import format_seed_runs, format_table


def test_format_table_lines_worked_by_hand():
    # seed 1: HM(90, 60) = 2*90*60/150 = 72.00; seed 3: HM(74, 40) = 5920/114 = 51.93;
    # seed 2 has no base result, so no HM and no part in the mean.
    # means over seeds 1 and 3: base 82 +- 8 (population std), new 50 +- 10,
    # HM of the means 2*82*50/132 = 62.12; mean of the per-seed HMs 61.96 +- 10.04.
    table = format_table([(1, 90.0, 60.0), (2, None, 50.0), (3, 74.0, 40.0)], "caltech101")
    assert table.splitlines() == [
        "caltech101",
        "seed                base             new              HM",
        "1                  90.00           60.00           72.00",
        "2                      -           50.00               -",
        "3                  74.00           40.00           51.93",
        "mean       82.00 +- 8.00  50.00 +- 10.00           62.12",
        "(2 of 3 seeds complete; per-seed HM mean 61.96 +- 10.04)",
    ]


def test_format_table_without_a_title_or_a_complete_seed():
    table = format_table([(1, 90.0, None), (2, None, 40.0)])
    assert table.splitlines() == [
        "seed                base             new              HM",
        "1                  90.00               -               -",
        "2                      -           40.00               -",
        "(no seed has both a base and a new result yet)",
    ]


def test_format_seed_runs_lines_worked_by_hand():
    # finished seeds 1 and 3: mean 83.00, population std 3.00
    table = format_seed_runs({1: 80.0, 2: None, 3: 86.0}, "output/eval/seeds")
    assert table.splitlines() == [
        "output/eval/seeds",
        "seed            accuracy",
        "1                  80.00",
        "2                      -",
        "3                  86.00",
        "mean       83.00 +- 3.00",
        "(2 of 3 seed folders finished)",
    ]


def test_format_seed_runs_with_nothing_finished():
    assert format_seed_runs({4: None}).splitlines() == [
        "seed            accuracy",
        "4                      -",
        "(no seed folder holds a finished result yet)",
    ]
