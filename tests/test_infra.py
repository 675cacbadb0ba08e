"""The cluster files, checked for syntax and for the properties they promise (Docker cannot run on the
machine ftscope is developed on; the cluster path itself is tested with real parts in test_cluster_e2e)."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_deploys_the_study_and_the_cell_flow_from_module_entrypoints():
    import importlib

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["pull"] == []  # no pull step that assumes a directory
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"study", "cell"}
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


def test_kubernetes_job_template_requests_the_cells_gpus_and_mounts_shared_volumes():
    template = json.loads((ROOT / "infra/k8s/base-job-template.json").read_text())
    variables = template["variables"]["properties"]
    assert variables["gpus"]["type"] == "integer" and variables["gpus"]["default"] == 0
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data/results", "/data/artifacts", "/data/cache"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    used = set(re.findall(r"{{ (\w+) }}", json.dumps(template["job_configuration"])))
    assert used <= set(variables), used - set(variables)  # every placeholder is a declared variable


def test_dockerfile_builds_a_cuda_image_as_a_non_root_user():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    instructions = [ln.split()[0] for ln in lines if not ln.startswith(("&&", "\\")) and ln.split()[0].isupper()]
    assert instructions[0] == "ARG" and "FROM" in instructions
    assert "nvidia/cuda" in next(ln for ln in lines if ln.startswith("ARG CUDA_IMAGE"))
    assert "torch==2.13.0" in " ".join(lines) and ".[deepspeed]" in " ".join(lines)
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")
    assert "USER ftscope" in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".cache/", "results/", "artifacts/"} <= set(ignored)
