"""CriticMonitor: a runaway critic is reported once after `patience` iterations, or stops the run when asked."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from common.handlers import CriticCollapseError, CriticMonitor


def _engine(**output) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(output=output, epoch=1, iteration=7))


def test_a_gap_beyond_the_bound_for_patience_iterations_is_reported_once(caplog) -> None:
    monitor = CriticMonitor(max_gap=10.0, patience=3)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            monitor(_engine(critic_real=50.0, critic_fake=-50.0, loss_critic=1.0))
        assert "collapsed" not in caplog.text
        monitor(_engine(critic_real=50.0, critic_fake=-50.0, loss_critic=1.0))
        monitor(_engine(critic_real=50.0, critic_fake=-50.0, loss_critic=1.0))
    assert caplog.text.count("collapsed") == 1 and "100" in caplog.text


def test_a_recovering_critic_resets_the_count_and_stages_without_one_are_quiet() -> None:
    monitor = CriticMonitor(max_gap=10.0, patience=2, stop=True)
    monitor(_engine(critic_real=50.0, critic_fake=0.0))
    monitor(_engine(critic_real=1.0, critic_fake=0.0))
    monitor(_engine(critic_real=50.0, critic_fake=0.0))
    for _ in range(5):
        monitor(_engine(loss=1.0, loss_critic=0.0))


def test_stop_raises_naming_the_values() -> None:
    monitor = CriticMonitor(max_loss=5.0, patience=1, stop=True)
    with pytest.raises(CriticCollapseError, match=r"loss_critic\| = nan|loss_critic"):
        monitor(_engine(critic_real=0.0, critic_fake=0.0, loss_critic=float("nan")))
    with pytest.raises(ValueError, match="patience"):
        CriticMonitor(patience=0)
