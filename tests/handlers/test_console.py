"""The console keeps a progress bar and one line per epoch; everything logged goes to <stage_dir>/train.log."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest

from common.handlers import EpochLine, setup_logging


@pytest.fixture
def console():
    """Adds a stdout handler to the root logger, as logging.conf installs it (call it in the test, once capsys has
    replaced sys.stdout); everything added is removed afterwards."""
    added = []

    def _add() -> logging.Handler:
        handler = logging.StreamHandler(sys.stdout)
        logging.getLogger().addHandler(handler)
        added.append(handler)
        return handler

    yield _add
    root = logging.getLogger()
    for h in added + [h for h in root.handlers if type(h).__name__ == "_StageFileHandler"]:
        root.removeHandler(h)
        h.close()


def test_engine_chatter_goes_to_the_file_only(console, tmp_path, capsys) -> None:
    console()
    path = setup_logging(str(tmp_path / "stage1"))
    logging.getLogger("ignite.engine.engine.UnitedTrainer").info("Epoch[1] Complete. Time taken: 00:00:01")
    logging.getLogger("united.progress").info("epoch 1/2: loss 2.1")
    logging.getLogger("monai.bundle").warning("a warning")
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "a warning" in out and "Epoch[1] Complete" not in out
    text = open(path).read()
    assert "Epoch[1] Complete" in text and "epoch 1/2" in text and "a warning" in text


def test_verbose_brings_everything_back_and_a_next_stage_gets_its_own_file(console, tmp_path, capsys) -> None:
    console()
    first = setup_logging(str(tmp_path / "stage1"))
    second = setup_logging(str(tmp_path / "stage2"), verbose=True)
    logging.getLogger("ignite.engine.engine.UnitedTrainer").info("engine message")
    assert "engine message" in capsys.readouterr().out
    assert "engine message" in open(second).read() and "engine message" not in open(first).read()


def test_other_ranks_write_no_file_and_print_warnings_only(console, tmp_path, capsys) -> None:
    console()
    assert setup_logging(str(tmp_path / "stage1"), rank0=False) is None
    logging.getLogger("united.progress").info("epoch line")
    assert "epoch line" not in capsys.readouterr().out and not (tmp_path / "stage1").exists()


def test_epoch_line_names_the_active_terms_the_diagnostics_and_validation(caplog) -> None:
    metrics = {"loss": 2.5, "loss_dis": 2.0, "loss_res": 0.005, "loss_adv": 0.0, "dis_accuracy": 0.375, "lr": 1e-4}
    trainer = SimpleNamespace(state=SimpleNamespace(epoch=3, max_epochs=20, metrics=metrics))
    evaluator = SimpleNamespace(state=SimpleNamespace(epoch=3, metrics={"val_loss": 2.6, "val_dis_accuracy": 0.25}))
    with caplog.at_level(logging.INFO, logger="united.progress"):
        EpochLine(evaluator)(trainer)
    line = caplog.records[-1].getMessage()
    assert line.startswith("epoch 3/20: loss 2.5 (dis 2, res 0.005) accuracy 0.375 | validation loss 2.6 accuracy 0.25 |")
    assert "adv" not in line
