import pytest

from ftscope.train.gpus import hold_gpus


def test_cells_on_one_node_never_share_a_device(tmp_path):
    with hold_gpus(1, [0, 1, 2], tmp_path) as a, hold_gpus(2, [0, 1, 2], tmp_path) as b:
        assert len(a) == 1 and len(b) == 2 and not set(a) & set(b)
        with pytest.raises(RuntimeError, match="only 0 of 1 GPUs free"):
            with hold_gpus(1, [0, 1, 2], tmp_path):
                pass
    with hold_gpus(3, [0, 1, 2], tmp_path) as c:  # released again
        assert c == [0, 1, 2]


def test_cpu_cells_hold_nothing_and_oversized_cells_fail_clearly(tmp_path):
    with hold_gpus(0, [], tmp_path) as none:
        assert none is None
    with pytest.raises(RuntimeError, match="needs 4 GPUs but this node has 2"):
        with hold_gpus(4, [0, 1], tmp_path):
            pass


def test_global_gpu_limit_is_created_then_resized(prefect_harness):
    from prefect.client.orchestration import get_client

    from tasks.policy import GPU_LIMIT, ensure_gpu_limit

    ensure_gpu_limit(2)
    ensure_gpu_limit(8)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(GPU_LIMIT).limit == 8
