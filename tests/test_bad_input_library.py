"""Bad input met through the command line: one line on stderr, exit status 2, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gradfit.cli import app

runner = CliRunner()


@pytest.fixture
def pets(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text("weight,label\n4.1,cat\n30.2,dog\n3.5,cat\n25.0,dog\n")
    return path


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_text_labels_for_a_network_are_one_line(pets):
    result = runner.invoke(app, ["fit", "--data", str(pets), "--x", "weight", "--y", "label", "--loss", "bernoulli",
                                 "--model", "shallow"])
    _one_line_error(result, "column 'label'", "(cat, dog)", "cat=0, dog=1")


def test_text_labels_for_a_regression_are_one_line(pets):
    result = runner.invoke(app, ["fit", "--data", str(pets), "--x", "weight", "--y", "label", "--loss", "bernoulli",
                                 "--model", "linear"])
    _one_line_error(result, "column 'label'", "(cat, dog)", "0/1", "cat=0, dog=1")


def test_a_semicolon_file_fits_from_the_command_line(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("x;y\n" + "".join(f"{i / 10};{1 + 2 * i / 10}\n" for i in range(20)))
    result = runner.invoke(app, ["fit", "--data", str(path), "--model", "linear", "--loss", "normal", "--quiet"])
    assert result.exit_code == 0, result.output


def test_a_bad_cell_is_named_by_its_line(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("x,y\n1,2\n\n2,\n3,4\n")
    result = runner.invoke(app, ["fit", "--data", str(path), "--model", "linear"])
    _one_line_error(result, "column 'y' of gap.csv", "line 4")
