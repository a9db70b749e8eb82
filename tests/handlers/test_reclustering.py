"""The re-clustering handler: features of the fixed cubes, one clustering for all ranks, a fresh last layer."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.data import CacheDataset

from common.clustering import cube_ids
from common.handlers import Reclustering
from common.handlers.reclustering import last_linear, reinitialise_linear
from common.networks import ClassificationHead, GenesisEncoder, UnitedModel
from common.tasks import DeepClusterTask
from common.transforms import FixedCubeSamplesd

VOLUMES, SAMPLES = 3, 4  # 3 volumes on 2 ranks: the shards differ in size


def _dataset() -> CacheDataset:
    g = torch.Generator().manual_seed(0)
    volumes = [{"image": torch.rand(1, 16, 16, 16, generator=g) + v} for v in range(VOLUMES)]
    return CacheDataset(volumes, FixedCubeSamplesd("image", [8, 8, 8], SAMPLES, seed=0), progress=False)


def _engine(epoch: int = 1) -> SimpleNamespace:
    torch.manual_seed(0)
    encoder = GenesisEncoder(base_channels=2, num_levels=2)
    model = UnitedModel(encoder, ClassificationHead(3, 8, num_classes=3, conv_channels=None, hidden_features=4))
    task = DeepClusterTask(num_clusters=3, num_cubes=VOLUMES * SAMPLES, pca_dim=2)
    task.setup(model)
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-3)
    state = SimpleNamespace(epoch=epoch, device=torch.device("cpu"), metrics={})
    return SimpleNamespace(task=task, network=model, optimizer=optimizer, state=state)


def test_features_are_the_pooled_bottlenecks_in_id_order() -> None:
    engine, dataset = _engine(), _dataset()
    handler = Reclustering(dataset, SAMPLES)
    encoder = engine.network.encoder.eval()
    features = handler.features(encoder, torch.device("cpu"))
    assert features.shape == (VOLUMES * SAMPLES, 8)
    for volume in range(VOLUMES):
        for cube_id, cube in zip(cube_ids(volume, SAMPLES), dataset[volume]):
            expected = encoder(cube["image"][None])[-1].mean(dim=(2, 3, 4))[0]
            torch.testing.assert_close(features[cube_id], expected)


def test_each_epoch_reclusters_and_renews_the_last_layer_and_its_optimizer_state() -> None:
    engine, dataset = _engine(), _dataset()
    handler = Reclustering(dataset, SAMPLES, seed=7)
    handler(engine)
    task, layer = engine.task, last_linear(engine.network.head)
    assert int(task.clusterings) == 1 and set(task.assignments.tolist()) == {0, 1, 2}
    expected = torch.nn.Linear(4, 3)
    reinitialise_linear(expected, 7 + 1)
    assert torch.equal(layer.weight, expected.weight) and torch.equal(layer.bias, expected.bias)
    assert "cluster_nmi" not in engine.state.metrics  # nothing to compare with yet
    # one optimizer step creates state for every parameter; the next re-clustering drops the last layer's
    engine.network(torch.rand(2, 1, 8, 8, 8))["head"].sum().backward()
    engine.optimizer.step()
    assert all(p in engine.optimizer.state for p in layer.parameters())
    engine.state.epoch = 2
    handler(engine)
    assert int(task.clusterings) == 2
    assert not any(p in engine.optimizer.state for p in layer.parameters())
    assert any(p in engine.optimizer.state for p in engine.network.encoder.parameters())  # the rest keeps its state
    reinitialise_linear(expected, 7 + 2)
    assert torch.equal(layer.weight, expected.weight)
    assert {"cluster_nmi", "cluster_ari", "cluster_reseeded", "cluster_largest"} <= set(engine.state.metrics)


def test_only_every_interval_th_epoch_reclusters_and_logs() -> None:
    engine = _engine()
    handler = Reclustering(_dataset(), SAMPLES, interval=2)
    for epoch, clusterings in ((1, 1), (2, 1), (3, 2), (4, 2)):
        engine.state.epoch = epoch
        head = {k: v.clone() for k, v in engine.network.head.state_dict().items()}
        handler(engine)
        assert int(engine.task.clusterings) == clusterings
        logged = "cluster_largest" in engine.state.metrics
        assert logged == (epoch % 2 == 1)  # no stale statistics in the epochs between clusterings
        unchanged = all(torch.equal(v, engine.network.head.state_dict()[k]) for k, v in head.items())
        assert unchanged == (epoch % 2 == 0)  # the last layer is renewed only with a new clustering


def test_the_same_epoch_clusters_the_same_way() -> None:
    first, second = _engine(epoch=3), _engine(epoch=3)
    for engine in (first, second):  # e.g. an uninterrupted run and a run resumed at this epoch
        Reclustering(_dataset(), SAMPLES)(engine)
    assert all(torch.equal(a, b) for a, b in zip(first.task.state_dict().values(), second.task.state_dict().values()))


def test_a_dataset_that_does_not_match_the_task_is_refused() -> None:
    engine = _engine()
    with pytest.raises(ValueError, match="12 fixed cubes"):
        Reclustering(_dataset(), SAMPLES + 1).attach(SimpleNamespace(task=engine.task, add_event_handler=None))
    with pytest.raises(ValueError, match="no nn.Linear"):
        last_linear(torch.nn.Conv1d(1, 1, 1))


def _rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        engine = _engine()
        if rank == 1:  # a different random start on rank 1: only rank 0's clustering may count
            torch.nn.init.normal_(engine.task.centroids)
        handler = Reclustering(_dataset(), SAMPLES, seed=3)
        for epoch in (1, 2):
            engine.state.epoch = epoch
            handler(engine)
        state = {f"task.{k}": v for k, v in engine.task.state_dict().items()}
        state.update({f"head.{k}": v for k, v in engine.network.head.state_dict().items()})
        state["metrics"] = torch.tensor([engine.state.metrics[k] for k in sorted(engine.state.metrics)])
        torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo")
def test_two_ranks_share_one_clustering_equal_to_the_single_process_one(tmp_path) -> None:
    # fork: the children need not import torch and MONAI again (seconds instead of tens of seconds)
    mp.start_processes(_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # the same pseudo-labels and last layer
    engine = _engine()
    handler = Reclustering(_dataset(), SAMPLES, seed=3)
    for epoch in (1, 2):
        engine.state.epoch = epoch
        handler(engine)
    for name, value in engine.task.state_dict().items():  # features gathered across ranks = all features in one process
        torch.testing.assert_close(ranks[0][f"task.{name}"], value)
