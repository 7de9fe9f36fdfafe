"""The ``emberflow`` command line: the demo runs end to end; bad usage exits 2 with one clear line."""

import json

from exporter.cli import main


def test_demo_trains_and_writes_a_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["test_images"] == 1000 and report["epochs"] == 1
    assert 0.5 < report["test_accuracy"] <= 1.0
    out = capsys.readouterr().out
    assert "Total params: 101,770" in out and "Test accuracy" in out


def test_bad_usage_exits_with_code_2(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err
