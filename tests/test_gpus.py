import logging
import threading

import pytest

from ftscope.train.gpus import hold_gpus


def test_cells_on_one_node_never_share_a_device(tmp_path):
    with hold_gpus(1, [0, 1, 2], tmp_path) as a, hold_gpus(2, [0, 1, 2], tmp_path) as b:
        assert len(a) == 1 and len(b) == 2 and not set(a) & set(b)
        with pytest.raises(TimeoutError, match="1 GPUs of this node were not free"):
            with hold_gpus(1, [0, 1, 2], tmp_path, timeout_s=0):
                pass
    with hold_gpus(3, [0, 1, 2], tmp_path) as c:  # released again
        assert c == [0, 1, 2]


def test_a_cell_waits_for_its_nodes_gpus_instead_of_failing(tmp_path, caplog):
    """More runs admitted than the node has GPUs: the extra one waits until a GPU is free, then runs."""
    waiting, got = threading.Event(), []

    class Waiting(logging.Handler):
        def emit(self, record):
            if "waits for" in record.getMessage():
                waiting.set()

    handler = Waiting()
    logging.getLogger("ftscope.train.gpus").addHandler(handler)
    logging.getLogger("ftscope.train.gpus").setLevel(logging.INFO)
    try:
        with hold_gpus(2, [0, 1], tmp_path) as first:
            t = threading.Thread(target=lambda: got.append(_hold(tmp_path)))
            t.start()
            assert waiting.wait(timeout=60) and not got  # blocked, not failed
        t.join(timeout=60)
        assert got == [[0]] and first == [0, 1]
    finally:
        logging.getLogger("ftscope.train.gpus").removeHandler(handler)


def _hold(lock_dir):
    with hold_gpus(1, [0, 1], lock_dir, poll_s=0.05, what="cell x") as ids:
        return ids


def test_cpu_cells_hold_nothing_and_oversized_cells_fail_clearly(tmp_path):
    with hold_gpus(0, [], tmp_path) as none:
        assert none is None
    with pytest.raises(RuntimeError, match="mastery of m needs 4 GPUs but this node has 2: send the model's runs"):
        with hold_gpus(4, [0, 1], tmp_path, what="mastery of m"):
            pass


def test_gpu_limits_are_created_when_missing_and_never_changed(prefect_harness, smoke_config):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from ftscope.config import ConfigError, load_config
    from tasks.policy import ensure_gpu_limits

    cfg = load_config(smoke_config, {"gpu_slots": 4, "models": [
        {"name": "a", "path": "/x", "gpus": 2, "processes": 2},
        {"name": "b", "path": "/x", "gpus": 4, "processes": 4, "work_queue": "gpu4"}]})
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="ftscope-gpus", limit=16))
        assert ensure_gpu_limits(cfg) == ["ftscope-gpus-gpu4 (4 GPUs)"]  # per queue; the user's 16 is kept
        assert client.read_global_concurrency_limit_by_name("ftscope-gpus").limit == 16
        assert ensure_gpu_limits(cfg.model_copy(update={"gpu_slots": 1})) == []  # exists now: left as it is
        assert client.read_global_concurrency_limit_by_name("ftscope-gpus-gpu4").limit == 4
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="ftscope-gpus-small", limit=1))
    small = cfg.model_copy(update={"models": [cfg.models[1].model_copy(update={"work_queue": "small"})]})
    with pytest.raises(ConfigError, match="admits 1 GPUs at once but a cell needs 4: `prefect gcl update"):
        ensure_gpu_limits(small)
