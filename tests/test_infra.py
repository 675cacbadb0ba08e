"""The cluster files, checked for syntax and for the properties they promise (Docker cannot run on the
machine ftscope is developed on; the cluster path itself is tested with real parts in test_cluster_e2e)."""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_deploys_the_study_prepare_and_cell_flows_from_module_entrypoints():
    import importlib

    import prefect

    from ftscope.schema import ClusterConfig

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["pull"] == []  # no pull step that assumes a directory
    assert spec["prefect-version"] == prefect.__version__
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"study", "prepare", "cell"}
    cluster = ClusterConfig()
    assert {cluster.deployment, cluster.prepare_deployment} == {"cell/cell", "prepare/prepare"}
    for d in deployments.values():
        module, name = d["entrypoint"].split(":")
        assert getattr(importlib.import_module(module), name).name == d["name"]
        assert d["work_pool"]["name"] == "ftscope"


def test_compose_is_safe_by_default():
    compose = yaml.safe_load((ROOT / "infra/docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "worker"}
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))  # loopback only
    text = (ROOT / "infra/docker-compose.yml").read_text()
    assert "prefect/prefect" not in text and not re.search(r"PASSWORD:\s*[A-Za-z0-9]", text)  # secrets from .env
    server = services["prefect-server"]["environment"]
    assert server["PREFECT_SERVER_API_AUTH_STRING"].startswith("${PREFECT_AUTH")
    assert services["worker"]["environment"]["PREFECT_API_AUTH_STRING"].startswith("${PREFECT_AUTH")
    assert services["worker"]["user"] == "ftscope"
    example = (ROOT / "infra/.env.example").read_text()
    assert all(f"{v}=" in example for v in ("POSTGRES_PASSWORD", "PREFECT_AUTH", "FTSCOPE_DATA", "HF_TOKEN"))
    assert "infra/.env" in (ROOT / ".gitignore").read_text()


def _strict(data, klass: str, path: str = "") -> list[str]:
    """Every key of `data` a field of the kubernetes client's model `klass`, recursively: the client itself
    drops unknown keys silently, so a misspelled field would pass its own deserialization."""
    from kubernetes_asyncio import client

    model = getattr(client, klass)
    by_json = {v: k for k, v in model.attribute_map.items()}
    problems = []
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{path}/{key}: not a field of {klass}")
            continue
        problems += _typed(value, model.openapi_types[by_json[key]], f"{path}/{key}")
    return problems


def _typed(value, typ: str, path: str) -> list[str]:
    if typ.startswith("list["):
        return [p for i, v in enumerate(value) for p in _typed(v, typ[5:-1], f"{path}/{i}")]
    if typ.startswith("dict("):
        return [p for k, v in value.items() for p in _typed(v, typ[typ.index(",") + 1:-1].strip(), f"{path}/{k}")]
    if typ[:2] in ("V1", "V2", "Co"):
        return _strict(value, typ, path) if isinstance(value, dict) else [f"{path}: {value!r} is not a {typ}"]
    ok = {"str": (str, int, float), "int": int, "bool": bool, "float": (int, float), "object": object}.get(typ, object)
    return [] if isinstance(value, ok) else [f"{path}: {value!r} is not a {typ}"]


# prefect-kubernetes 0.8 refuses a template without these two at the pod level (its validator compares with
# its own base manifest); the API server drops them there, so they are allowed and nothing else is
PREFECT_K8S_QUIRKS = ["/spec/template/spec/parallelism: not a field of V1PodSpec",
                      "/spec/template/spec/completions: not a field of V1PodSpec"]


def _rendered_job(values: dict) -> dict:
    """The Job manifest the Kubernetes worker would create for a flow run with these job variables: the
    template rendered and prepared by prefect-kubernetes' own job configuration code."""
    import asyncio
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads((ROOT / "infra/k8s/base-job-template.json").read_text())
    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values))
    config.prepare_for_flow_run(FlowRun(flow_id=uuid4(), name="cell-run"))
    return config.job_manifest


def test_the_kubernetes_template_renders_a_valid_job_for_a_70b_cell(prefect_harness):
    from kubernetes_asyncio.client import ApiClient

    from ftscope.config import load_config
    from tasks.dispatch import job_variables

    cfg = load_config(ROOT / "configs/paper-k.yaml")
    model = cfg.model("llama3-70b")
    job = _rendered_job(job_variables(cfg, model))  # what a cell of the 70B model sends
    assert _strict(job, "V1Job") == PREFECT_K8S_QUIRKS
    async def deserialize():  # the client's own required-field checks
        async with ApiClient() as api:
            return api._ApiClient__deserialize(job, "V1Job")

    import asyncio

    parsed = asyncio.run(deserialize())
    pod = parsed.spec.template.spec
    container = pod.containers[0]
    assert container.args == ["prefect", "flow-run", "execute"] and container.command is None  # the image's CMD
    limits = {k: str(v) for k, v in container.resources.limits.items()}
    assert limits == {"nvidia.com/gpu": "8", "memory": "1200Gi"} and container.image == "ftscope:latest"
    assert str(container.resources.requests["nvidia.com/gpu"]) == "8"
    assert {(m.name, m.mount_path) for m in container.volume_mounts} == {("shared", "/shared"), ("shm", "/dev/shm")}
    assert next(v for v in pod.volumes if v.name == "shm").empty_dir.size_limit == "64Gi"
    assert container.env_from[0].secret_ref.optional is False  # a missing token stops the pod at once
    assert pod.security_context.run_as_user == 1000 and pod.security_context.run_as_non_root
    assert {e.name: e.value for e in container.env}["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert parsed.spec.backoff_limit == 0  # Prefect, not Kubernetes, decides what runs again
    for path in ("artifacts_dir", "cache_dir"):
        assert getattr(cfg, path).startswith("/shared/")  # the configs' paths are where pods mount the volume
    assert cfg.data.path.startswith("/shared/")

    cpu = _rendered_job({"node_selector": {"pool": "cpu"}, "tolerations": [{"key": "x", "operator": "Exists"}]})
    assert _strict(cpu, "V1Job") == PREFECT_K8S_QUIRKS
    spec = cpu["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "cpu"} and spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 0


def test_the_strict_check_catches_a_misspelled_field():
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
        {"name": "x", "volumeMount": []}]}}}}
    assert _strict(job, "V1Job") == ["/spec/template/spec/containers/0/volumeMount: not a field of V1Container"]


def test_the_kubernetes_manifests_are_valid_objects():
    for name, klass in (("namespace.yaml", "V1Namespace"), ("shared-pvc.yaml", "V1PersistentVolumeClaim"),
                        ("secret.example.yaml", "V1Secret")):
        doc = yaml.safe_load((ROOT / "infra/k8s" / name).read_text())
        assert _strict(doc, klass) == [], name
        assert doc.get("metadata", {}).get("namespace", "ftscope") == "ftscope"
    pvc = yaml.safe_load((ROOT / "infra/k8s/shared-pvc.yaml").read_text())
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # every node mounts it
    template = json.loads((ROOT / "infra/k8s/base-job-template.json").read_text())
    assert template["variables"]["properties"]["shared_claim"]["default"] == pvc["metadata"]["name"]
    assert "infra/k8s/secret.yaml" in (ROOT / ".gitignore").read_text()


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_the_image_runs_the_workers_command_as_given():
    """Kubernetes runs ENTRYPOINT + args (args replacing CMD): the worker's `prefect flow-run execute` must be
    the whole command. Checked by running what the container would run, here, without Docker."""
    import shutil
    import subprocess

    lines = _dockerfile()
    entrypoint = [json.loads(ln.split(None, 1)[1]) for ln in lines if ln.startswith("ENTRYPOINT")]
    cmd = [json.loads(ln.split(None, 1)[1]) for ln in lines if ln.startswith("CMD")]
    argv = (entrypoint[-1] if entrypoint else []) + ["prefect", "flow-run", "execute", "--help"]
    exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    r = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "flow-run" in r.stdout.lower() + r.stderr.lower(), r.stderr[-500:]
    default = (entrypoint[-1] if entrypoint else []) + cmd[-1]  # the image run with no command
    r = subprocess.run([shutil.which(default[0], path=str(Path(sys.executable).parent)), *default[1:]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ftscope" in r.stdout


def test_dockerfile_builds_a_cuda_image_as_a_non_root_user():
    lines = _dockerfile()
    instructions = [ln.split()[0] for ln in lines if ln.split()[0].isupper()]
    assert instructions[0] == "ARG" and "FROM" in instructions
    assert "nvidia/cuda" in next(ln for ln in lines if ln.startswith("ARG CUDA_IMAGE"))
    text = " ".join(lines)
    assert "torch==2.13.0" in text and ".[deepspeed,vllm]" in text and "vllm==0.32.0" in text
    assert "USER ftscope" in lines and instructions.index("USER") > instructions.index("RUN")
    assert "userdel --remove ubuntu" in text  # ubuntu 24.04 images hold UID 1000 already
    assert "TORCH_EXTENSIONS_DIR=/shared/cache" in text  # DeepSpeed JIT builds kept on the shared volume
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".cache/", "results/", "artifacts/"} <= set(ignored)
