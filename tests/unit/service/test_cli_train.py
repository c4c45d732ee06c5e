"""`dmm eval`, `dmm show`, `dmm synth` through typer's runner on a tiny app of our own."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dmm_engine import count_links, default_registry, load_model
from service import cli_train

SPARSE20 = str(
    resources.files("dmm_engine.zoo").joinpath("data/sparse20-after-100-steps-matrix.json")
)


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("eval")(cli_train.eval_command)
    app.command("show")(cli_train.show_command)
    app.command("synth")(cli_train.synth_command)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_eval_of_the_published_matrix_prints_the_seed_numbers(app: typer.Typer) -> None:
    code, out, _ = run(
        app,
        "eval",
        "--arch",
        "ff3",
        "--matrix",
        SPARSE20,
        "--text",
        "test string.",
        "--window",
        "140",
    )
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["prereg_loss", "reg_l1", "reg_l2", "soft_links", "max_element_error"]
    assert data["prereg_loss"] == pytest.approx(0.0016100588, rel=1e-5)
    assert data["max_element_error"] == pytest.approx(0.0005265353, rel=1e-5)
    assert (data["soft_links"], data["reg_l1"]) == (19, pytest.approx(12.706874, rel=1e-6))


def test_eval_of_a_model_against_itself_is_exact(app: typer.Typer) -> None:
    code, out, _ = run(
        app, "eval", "--model", "duplicate-detector", "--text", "tets. str.ingtb", "--window", "160"
    )
    assert code == 0
    data = json.loads(out)
    assert (data["prereg_loss"], data["soft_links"]) == (0.0, 11)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--text", "a", "--window", "5"],
            "give exactly one of --model FILE or --arch ARCH --matrix FILE",
        ),
        (
            ["--model", "duplicate-detector", "--arch", "ff3", "--text", "a", "--window", "5"],
            "--arch goes with --matrix",
        ),
        (
            ["--matrix", "/nonexistent.json", "--text", "a", "--window", "5"],
            "/nonexistent.json: no such file",
        ),
        (["--model", "nope", "--text", "a", "--window", "5"], "unknown model 'nope'"),
    ],
)
def test_eval_errors_are_one_line_and_exit_2(
    app: typer.Typer, args: list[str], message: str
) -> None:
    code, out, err = run(app, "eval", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("dmm: error: ") and message in err


def test_show_writes_a_picture_and_refuses_other_formats(app: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(app, "show", "duplicate-detector", "-o", str(tmp_path / "d.svg"))
    assert (code, out.strip()) == (0, str(tmp_path / "d.svg"))
    assert b"<svg" in (tmp_path / "d.svg").read_bytes()[:400]
    code, _, _ = run(app, "show", SPARSE20, "--arch", "ff3", "-o", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run(app, "show", "duplicate-detector", "-o", str(tmp_path / "d.gif"))
    assert code == 2 and "picture format '.gif' is not one of svg, png" in err


def test_synth_quick_writes_model_report_pictures_and_log(app: typer.Typer, tmp_path: Path) -> None:
    code, out, err = run(
        app, "synth", "--quick", "--init", "random", "--seed", "5", "--layers", "2",
        "--dense-steps", "150", "--target-links", "24", "--text", "test string.", "--window", "140",
        "--out", str(tmp_path), "--name", "tiny",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["soft_links"] <= 24
    model = load_model(summary["model"], default_registry())
    assert count_links(model.matrix) == summary["soft_links"]
    report = json.loads(Path(summary["report"]).read_text())
    assert report["generalisation"][0]["text"] == "test string."
    assert Path(summary["curves"]).exists() and Path(summary["graph"]).exists()
    log = (tmp_path / "tiny.log").read_text()
    assert "synth preset=seed arch=ff3 init=random" in log
    assert "stage=dense" in log and "stage=polish" in log


def test_synth_refuses_inconsistent_options(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = run(app, "synth", "--arch", "compare-free", "--out", str(tmp_path))
    assert code == 2 and "--init ff3-initial is the seed's 5-layer ff3 matrix" in err
    code, _, err = run(app, "synth", "--window", "90", "--out", str(tmp_path))
    assert code == 2 and "--window goes with --text" in err
