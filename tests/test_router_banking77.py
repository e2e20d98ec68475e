"""The generic router on banking77 (77 intents): trained on 80% of banking77_train.csv, measured on
the other 20% (a split we make by a hash of the text; the official test split is kept outside
shared/). Embeds ~10,000 short texts once (about a minute on two cores), cached in the temp dir."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from assistant.cli.router import app
from assistant.routing.train import SHARED_DATA
from assistant.routing.textclf import in_holdout

BANKING77 = SHARED_DATA / "banking77_train.csv"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not BANKING77.is_file(), reason="no shared banking77 data")]


def test_banking77_train_and_evaluate(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    with BANKING77.open(newline="") as f:
        rows = list(csv.DictReader(f))
    parts = {"train": [r for r in rows if not in_holdout(r["text"], 20, "b77")],
             "test": [r for r in rows if in_holdout(r["text"], 20, "b77")]}
    for name, part in parts.items():
        with (tmp_path / f"{name}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "category"])
            writer.writeheader()
            writer.writerows(part)
    runner, model = CliRunner(), tmp_path / "b77.npz"
    trained = runner.invoke(app, ["train", "--data", str(tmp_path / "train.csv"), "--label-col", "category",
                                  "--out", str(model), "--json"])
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["n_labels"] == 77 and report["seconds"] < 600
    scored = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(tmp_path / "test.csv"),
                                 "--label-col", "category", "--json"])
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.stdout)
    print(f"banking77 held-out 20%: n={result['n']} accuracy={result['accuracy']} macro-F1={result['macro_f1']}")
    assert result["n"] > 1500 and result["accuracy"] >= 0.88 and result["macro_f1"] >= 0.88
