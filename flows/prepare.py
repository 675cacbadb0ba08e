"""A base model's preparation (Study K: mastery scoring) as its own flow run (deployment `prepare`), with
that model's GPU request, when the config says `dispatch: deployments`: models prepare in parallel on GPU
workers and the study flow itself needs no GPU. The result goes to the store, where the study reads it."""

from prefect import flow

from ftscope.config import parse_config
from ftscope.reproducible import settle
from tasks.dispatch import mark_started
from tasks.study import base_model_task, prepare_data_task, prepare_model_task


@flow(name="prepare", flow_run_name="prepare {model}")
def prepare(config: dict, model: str) -> None:
    cfg = parse_config(config)
    mark_started(cfg)
    settle(cfg)
    data = prepare_data_task(cfg)
    path, _ = base_model_task(cfg, model, data)
    prepare_model_task(cfg, model, path, data)
