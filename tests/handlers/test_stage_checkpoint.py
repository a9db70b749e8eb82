"""Crash-safe checkpoints: atomic writes, old files removed only after the new one is whole, damaged files skipped."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch

from common.handlers import StageCheckpointSaver, checkpoints, load_checkpoint, save_checkpoint


class Counter:
    """A checkpointable object with a value."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def state_dict(self) -> dict:
        return {"value": torch.tensor(self.value)}


def _engine(epoch: int, counter: Counter) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch), checkpoint_objects=lambda: {"counter": counter})


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "checkpoint_epoch=1.pt")
    save_checkpoint({"counter": Counter(1)}, path)

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # stands for the process being killed during the write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"counter": Counter(2)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["checkpoint_epoch=1.pt"]  # the temporary file is gone, the old one untouched
    assert int(torch.load(path, weights_only=True)["counter"]["value"]) == 1


def test_interval_checkpoints_keep_the_newest_n_and_remove_old_ones_only_after_writing(tmp_path) -> None:
    saver = StageCheckpointSaver(str(tmp_path), save_interval=1, n_saved=2)
    counter = Counter()
    saver.objects = {"counter": counter}
    seen = []
    for epoch in (1, 2, 3):
        counter.value = epoch
        saver.save_interval_checkpoint(_engine(epoch, counter))
        seen.append(sorted(os.listdir(tmp_path)))
    assert seen[-1] == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]
    assert [os.path.basename(p) for p in checkpoints(str(tmp_path))] == ["checkpoint_epoch=3.pt", "checkpoint_epoch=2.pt"]
    saver.save_final_checkpoint(_engine(3, counter))
    assert os.path.basename(checkpoints(str(tmp_path))[0]) == "checkpoint_final.pt"


def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path, caplog) -> None:
    save_checkpoint({"counter": Counter(1)}, str(tmp_path / "checkpoint_epoch=1.pt"))
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(b"")  # a kill at the worst moment of a copy
    (tmp_path / ".partial-0123-checkpoint_epoch=3.pt").write_bytes(b"x")  # a write that never finished
    with caplog.at_level(logging.WARNING):
        path, state = load_checkpoint(str(tmp_path))
    assert path.endswith("checkpoint_epoch=1.pt") and int(state["counter"]["value"]) == 1
    assert "checkpoint_epoch=2.pt cannot be read" in caplog.text


def test_no_readable_checkpoint_is_an_error_listing_them(tmp_path) -> None:
    assert load_checkpoint(str(tmp_path)) is None
    (tmp_path / "checkpoint_final.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="(?s)no checkpoint .* can be read.*checkpoint_final.pt.*--overwrite"):
        load_checkpoint(str(tmp_path))


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_saved"):
        StageCheckpointSaver("x", n_saved=0)
