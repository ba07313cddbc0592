"""deploy/k8s validated offline: every overlay built in Python, every object checked against the Kubernetes schemas
and the KubeRay 1.7 CRDs, the strings inside them (serveConfigV2, runtimeEnvYAML, the mor job spec) and the
commands (mor, mlflow server) against their own models and CLIs; a misspelt field fails with file and path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from deploy.check import check_kubernetes
from deploy.kustomize import KustomizeError, Resource, build, load_documents
from deploy.paths import DEPLOY, REPO, kuberay_crds_dir
from deploy.schemas import builtin_problems

K8S = DEPLOY / "k8s"


def _problems(directory: Path) -> list[str]:
    try:
        resources = build(directory)
    except KustomizeError as error:
        return [str(error)]
    return check_kubernetes(resources, kuberay_crds_dir())


def _by_label(directory: Path) -> dict[str, Resource]:
    return {resource.label: resource for resource in build(directory)}


@pytest.mark.parametrize("kustomization", ["overlays/cpu", "overlays/gpu", "nightly"])
def test_every_kustomization_builds_and_validates(kustomization: str) -> None:
    assert _problems(K8S / kustomization) == []


def test_overlays_hold_the_whole_platform() -> None:
    for overlay in ("cpu", "gpu"):
        kinds = {(r.body["kind"], r.body["metadata"]["name"]) for r in build(K8S / "overlays" / overlay)}
        assert {
            ("RayCluster", "mor"),
            ("RayJob", "mor-train"),
            ("RayService", "mor-agent"),
            ("StatefulSet", "postgres"),
            ("StatefulSet", "minio"),
            ("Deployment", "mlflow"),
            ("StatefulSet", "mor-eval-scheduler"),
            ("ConfigMap", "mor-train-spec"),
            ("ConfigMap", "postgres-init"),
        } <= kinds, overlay
        namespaces = {r.body["metadata"].get("namespace") for r in build(K8S / "overlays" / overlay)}
        assert namespaces == {"mor", None}  # None: the Namespace itself


def test_secrets_example_is_valid_and_complete() -> None:
    names = set()
    for doc in load_documents(K8S / "secrets.example.yaml"):
        assert builtin_problems(doc) == []
        names.add(doc["metadata"]["name"])
    assert names == {"mor-ray-token", "mor-postgres", "mor-minio", "mor-agent-keys", "mor-hf-token"}


def test_gpu_overlay_puts_training_on_gpus() -> None:
    objects = _by_label(K8S / "overlays" / "gpu")
    job = objects["RayJob mor-train"].body["spec"]["rayClusterSpec"]
    worker = job["workerGroupSpecs"][0]
    assert worker["replicas"] == 4
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["template"]["spec"]["containers"][0]["image"] == "registry.example.com/mor:0.1.0-cuda"
    spec = yaml.safe_load(objects["ConfigMap mor-train-spec"].body["data"]["job.yaml"])
    assert spec["train"]["workers"] == worker["replicas"] and spec["train"]["use_gpu"] is True
    groups = [g["groupName"] for g in objects["RayCluster mor"].body["spec"]["workerGroupSpecs"]]
    assert groups == ["cpu", "gpu"]
    cpu = _by_label(K8S / "overlays" / "cpu")["RayJob mor-train"].body["spec"]["rayClusterSpec"]
    assert "nvidia.com/gpu" not in str(cpu)


def _without_paths(spec: dict) -> dict:
    for source in spec["data"]["sources"]:
        for params in source.values():
            params.pop("path", None)
    return spec


def test_train_specs_are_the_jobs_specs() -> None:
    gpu = yaml.safe_load((K8S / "overlays" / "gpu" / "train-spec.yaml").read_text())
    paper = yaml.safe_load((REPO / "jobs" / "paper-llama-3.2-1b.yaml").read_text())
    assert [s[next(iter(s))]["path"] for s in gpu["data"]["sources"]] == [
        "/data/" + s[next(iter(s))]["path"].removeprefix("data/") for s in paper["data"]["sources"]
    ]
    assert _without_paths(gpu) == _without_paths(paper)
    cpu = yaml.safe_load((K8S / "overlays" / "cpu" / "train-spec.yaml").read_text())
    assert cpu == yaml.safe_load((REPO / "jobs" / "quickstart.yaml").read_text())


def test_serve_config_is_services_agent() -> None:
    service = _by_label(K8S / "overlays" / "cpu")["RayService mor-agent"].body
    ours = yaml.safe_load(service["spec"]["serveConfigV2"])
    theirs = yaml.safe_load((REPO / "services" / "agent" / "serve.yaml").read_text())
    assert ours["http_options"] == {**theirs["http_options"], "host": "0.0.0.0"}
    for mine, reference in zip(ours["applications"], theirs["applications"], strict=True):
        assert mine["runtime_env"]["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert {k: v for k, v in mine.items() if k != "runtime_env"} == {
            k: v for k, v in reference.items() if k != "runtime_env"
        }


# (file under deploy/k8s, text, replaced by, the kustomization to build, what the problem must name)
MISSPELLINGS = [
    (
        "base/raycluster.yaml",
        "dashboard-host: 0.0.0.0\n    template:\n      spec:\n        securityContext",
        "dashboard-host: 0.0.0.0\n    template:\n      spec:\n        securityContxt",
        "overlays/cpu",
        "RayCluster mor: spec.headGroupSpec.template.spec.securityContxt: unknown field",
    ),
    (
        "base/rayjob-train.yaml",
        "shutdownAfterJobFinishes:",
        "shutdownAfterJobFinish:",
        "overlays/cpu",
        "RayJob mor-train: spec.shutdownAfterJobFinish: unknown field",
    ),
    (
        "base/rayjob-train.yaml",
        "  runtimeEnvYAML: |\n    env_vars:",
        "  runtimeEnvYAML: |\n    env_var:",
        "overlays/cpu",
        "RayJob mor-train: spec.runtimeEnvYAML.env_var: unknown runtime_env field",
    ),
    (
        "base/rayjob-train.yaml",
        "  runtimeEnvYAML: |\n    env_vars:",
        "  runtimeEnvYAML: |\n    pip: [torch]\n    env_vars:",
        "overlays/cpu",
        "spec.runtimeEnvYAML.pip: installs at job start",
    ),
    (
        "base/rayjob-train.yaml",
        "--address http://127.0.0.1:8265",
        "--adress http://127.0.0.1:8265",
        "overlays/cpu",
        "RayJob mor-train: spec.entrypoint: mor job submit /etc/mor/job/job.yaml --adress",
    ),
    (
        "base/rayservice-agent.yaml",
        "num_replicas: 1",
        "num_replica: 1",
        "overlays/cpu",
        "RayService mor-agent: spec.serveConfigV2.applications[0].deployments[0].num_replica: unknown field",
    ),
    (
        "base/rayservice-agent.yaml",
        "batching: cross-role",
        "batchng: cross-role",
        "overlays/cpu",
        "RayService mor-agent: spec.serveConfigV2.applications[0].args.batchng: Extra inputs are not permitted",
    ),
    (
        "base/rayservice-agent.yaml",
        "      port: 8000",
        "      prot: 8000",
        "overlays/cpu",
        "spec.serveConfigV2.http_options.prot: unknown field",
    ),
    (
        "base/mlflow.yaml",
        "readinessProbe:",
        "readinesProbe:",
        "overlays/cpu",
        "Deployment mlflow: spec.template.spec.containers[0].readinesProbe: unknown field",
    ),
    (
        "base/mlflow.yaml",
        "--serve-artifacts\n",
        "--serve-artifact\n",
        "overlays/cpu",
        "Deployment mlflow: spec.template.spec.containers[0].command: 'mlflow server'",
    ),
    (
        "base/postgres.yaml",
        "volumeClaimTemplates:",
        "volumeClaimTemplate:",
        "overlays/cpu",
        "StatefulSet postgres: spec.volumeClaimTemplate: unknown field",
    ),
    (
        "base/scheduler.yaml",
        "- --owner-id",
        "- --owner",
        "overlays/cpu",
        "StatefulSet mor-eval-scheduler: spec.template.spec.containers[0].command: mor eval serve --owner",
    ),
    (
        "base/config.yaml",
        "MOR_BENCHMARKS_DIR",
        "MOR_BENCHMARK_DIR",
        "overlays/cpu",
        "ConfigMap mor-config: data.MOR_BENCHMARK_DIR: 'MOR_BENCHMARK_DIR' is read by no mor code",
    ),
    (
        "overlays/gpu/train-spec.yaml",
        "  lr: 5.0e-5",
        "  lerning_rate: 5.0e-5",
        "overlays/gpu",
        "ConfigMap mor-train-spec data.job.yaml: train.lerning_rate: unknown key",
    ),
    (
        "overlays/gpu/train-spec.yaml",
        "path: /data/xlam",
        "path: /mnt/xlam",
        "overlays/gpu",
        "data.sources.4.xlam.path: got '/mnt/xlam', which is on no volume",
    ),
    (
        "overlays/gpu/rayjob-gpu-workers.yaml",
        "workerGroupSpecs/0/replicas",
        "workerGroupSpec/0/replicas",
        "overlays/gpu",
        "rayjob-gpu-workers.yaml: RayJob mor-train: path /spec/rayClusterSpec/workerGroupSpec/0/replicas",
    ),
    ("base/kustomization.yaml", "labels:", "commonLabel:", "overlays/cpu", "commonLabel: unknown or unsupported key"),
    (
        "nightly/raycronjob-bfcl.yaml",
        "timeZone:",
        "timezone:",
        "nightly",
        "RayCronJob mor-nightly-bfcl: spec.timezone: unknown field",
    ),
    (
        "nightly/raycronjob-bfcl.yaml",
        "--category simple_python",
        "--categroy simple_python",
        "nightly",
        "spec.jobTemplate.entrypoint: mor eval run bfcl --categroy",
    ),
    (
        "base/raycluster.yaml",
        'rayVersion: "2.60.0"',
        'rayVersion: "2.52.0"',
        "overlays/cpu",
        "RayCluster mor: spec.rayVersion: got '2.52.0', the lock pins ray",
    ),
    (
        "base/rayservice-agent.yaml",
        "      mode: token",
        "      mode: disabled",
        "overlays/cpu",
        "RayService mor-agent: spec.rayClusterConfig.authOptions: got {'mode': 'disabled'",
    ),
    (
        "base/raycluster.yaml",
        "key: mor-password}",
        "key: mor-pasword}",
        "overlays/cpu",
        "secretKeyRef: mor-postgres/mor-pasword is not a Secret key",
    ),
]


@pytest.mark.parametrize(("file", "text", "replacement", "kustomization", "expected"), MISSPELLINGS)
def test_a_misspelt_field_fails_with_file_and_path(
    tmp_path: Path, file: str, text: str, replacement: str, kustomization: str, expected: str
) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    target = tree / file
    original = target.read_text()
    assert text in original, f"{file} no longer holds {text!r}: update the test"
    target.write_text(original.replace(text, replacement, 1))
    problems = _problems(tree / kustomization)
    matching = [p for p in problems if expected in p]
    assert matching, f"no problem names {expected!r}; got {problems}"
    # The file is named: the manifest (or patch) the object came from; for the spec, the overlay's generator.
    assert all(str(tree / file) in p for p in matching), matching
