"""Offline checks of the cluster definitions in cluster/ (no cloud account, no Ray started).

What a cloud would reject before a node starts is checked here: the launcher YAMLs against
the schema and validator of the installed Ray, the RayJob manifest's shape, the security
settings (token auth on, dashboard private, no secrets in files), the version pins, and that
the sweep command each file documents is one the sweep's own CLI accepts and the cluster
can hold. Whether the AMIs, images, quotas and permissions exist can only be seen in a cloud.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from cnn.sweep_settings import PRESETS

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER_CONFIGS = ("aws.yaml", "gcp.yaml")
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"
GUIDE = REPO / "docs" / "CLUSTER.md"
PLACEHOLDER = re.compile(r"change-me", re.IGNORECASE)
MARKER = "# CHANGE ME:"
IMAGE = re.compile(r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>3\d+)(?P<gpu>-gpu)?")
AWS_GPU_FAMILIES = ("g4dn.", "g5.", "g6.", "g6e.", "p3.", "p4d.", "p5.")


# ---------------------------------------------------------------------------------------------
# What the files are checked against: the pins and the installed Ray's schema


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[_normal(name)] = version.strip()
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


PINS = constraint_pins()
RAY_VERSION = PINS["ray"]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


def ray_schema() -> dict[str, Any]:
    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def rayjob() -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d is not None]
    assert len(documents) == 1, "kuberay-rayjob.yaml should hold the RayJob alone (the Secret is made with kubectl)"
    return documents[0]


@functools.cache
def sweep_cli():
    """jobs/sweep.py as a module, to parse the commands the cluster files run."""
    jobs = str(REPO / "jobs")
    added = jobs not in sys.path
    if added:
        sys.path.insert(0, jobs)  # for its `from cli_common import ...`
    try:
        spec = importlib.util.spec_from_file_location("cluster_test_sweep_cli", REPO / "jobs" / "sweep.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(jobs)
    return module


def parse_sweep_command(command: str):
    """The resolved SweepSettings of `python jobs/sweep.py ...` (fails the test if the CLI refuses it)."""
    words = shlex.split(command)
    assert words[:2] == ["python", "jobs/sweep.py"], command
    cli = sweep_cli()
    args = cli.parse_args(words[2:])
    return cli.settings_from_args(args), args


# ---------------------------------------------------------------------------------------------
# The pins themselves


def test_pins_agree_between_pyproject_constraints_and_the_installed_ray():
    import ray

    deps = {_normal(Requirement(d).name): Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
    assert RAY_VERSION in deps["ray"].specifier, (RAY_VERSION, str(deps["ray"].specifier))
    assert ray.__version__ == RAY_VERSION, "the schema checked below is the installed Ray's; install the pins"
    gpu_extra = [Requirement(d) for d in PYPROJECT["project"]["optional-dependencies"]["gpu"]]
    assert any(r.name == "tensorflow" and "and-cuda" in r.extras and PINS["tensorflow"] in r.specifier
               for r in gpu_extra)


# ---------------------------------------------------------------------------------------------
# Cluster launcher configs (aws.yaml, gcp.yaml)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_matches_the_installed_rays_schema(name):
    jsonschema.validate(load(name), ray_schema())


def test_schema_check_has_teeth():
    config = load("aws.yaml")
    broken = copy.deepcopy(config)
    broken["head_node_typo"] = "head_cpu"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema())
    fractional = copy.deepcopy(config)
    fractional["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(fractional, ray_schema())


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_own_preparation_and_validation(name):
    """What `ray up` does before it calls the cloud: merge the provider defaults, validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(load(name)))
    validate_config(prepared)
    commands = [c for key in ("head_setup_commands", "worker_setup_commands", "head_start_ray_commands",
                              "worker_start_ray_commands", "initialization_commands") for c in prepared[key]]
    # Ray's defaults install a nightly Ray wheel and open the dashboard; neither may survive the merge.
    assert not [c for c in commands if "ray-wheels" in c or "0.0.0.0" in c]
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0


def gpu_node_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in config["available_node_types"].items()
            if name != config["head_node_type"] and t["resources"].get("GPU", 0) >= 1}


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_head_trains_nothing_and_gpu_workers_autoscale_from_zero(name):
    config = load(name)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = gpu_node_types(config)
    assert workers, "no GPU worker type"
    full = PRESETS["full"]
    for node_type in workers.values():
        assert node_type.get("min_workers", 0) == 0
        cpu, gpu = node_type["resources"]["CPU"], node_type["resources"]["GPU"]
        train_workers_per_node = min(cpu // full.cpus_per_worker, gpu // 1)
        assert train_workers_per_node >= 1, "a full-preset worker (2 CPU + 1 GPU) does not fit a node"
        assert node_type["max_workers"] * train_workers_per_node >= full.workers_per_trial
        assert node_type["max_workers"] <= config["max_workers"]
        node_config = node_type["node_config"]
        if config["provider"]["type"] == "aws":
            assert node_config["InstanceType"].startswith(AWS_GPU_FAMILIES)
        else:
            accelerators = node_config["guestAccelerators"]
            assert sum(a["acceleratorCount"] for a in accelerators) == gpu
            assert {"onHostMaintenance": "TERMINATE"} in node_config["scheduling"]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_images_are_the_pinned_ray_and_python(name):
    docker = load(name)["docker"]
    images = [docker[k] for k in ("image", "head_image", "worker_image") if k in docker]
    requires_python = SpecifierSet(PYPROJECT["project"]["requires-python"])
    for image in images:
        match = IMAGE.fullmatch(image)
        assert match, f"{image}: expected rayproject/ray:<version>-py3XX[-gpu] (ray-ml is discontinued)"
        assert match["ray"] == RAY_VERSION
        python = f"{match['py'][0]}.{match['py'][1:]}"
        assert python == f"{sys.version_info.major}.{sys.version_info.minor}", "constraints.txt was locked here"
        assert python in requires_python
    assert docker["image"].endswith("-gpu"), "workers need the CUDA image"
    assert docker["container_name"]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_nodes_sync_the_project_and_install_it_at_its_pins(name):
    config = load(name)
    assert config["file_mounts"]["~/cnn-sweep"] == "."
    assert {".venv", "results", ".git"} <= set(config["rsync_exclude"])
    head = config["setup_commands"] + config["head_setup_commands"]
    workers = config["setup_commands"] + config["worker_setup_commands"]
    assert "cd ~/cnn-sweep && pip install -c constraints.txt -e ." in head
    assert "cd ~/cnn-sweep && pip install -c constraints.txt -e '.[gpu]'" in workers
    for command in head + workers:
        if "pip install" in command and " -e " in command:
            assert "-c constraints.txt" in command, command
    assert (REPO / "constraints.txt").is_file() and (REPO / "pyproject.toml").is_file()


def launcher_security_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    commands = {key: config.get(key, []) for key in ("initialization_commands", "setup_commands",
                                                     "head_setup_commands", "worker_setup_commands",
                                                     "head_start_ray_commands", "worker_start_ray_commands")}
    for key, lines in commands.items():
        for command in lines:
            if "0.0.0.0" in command:
                problems.append(f"{key}: binds to 0.0.0.0: {command}")
            if re.search(r"RAY_AUTH_MODE=(?!token\b)", command):
                problems.append(f"{key}: token authentication not 'token': {command}")
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in commands[key] if "ray start" in c]
        if not starts:
            problems.append(f"{key}: no `ray start`")
        for command in starts:
            mode = command.find("export RAY_AUTH_MODE=token")
            if mode < 0 or mode > command.find("ray start"):
                problems.append(f"{key}: `ray start` without RAY_AUTH_MODE=token exported first")
    if not any("--dashboard-host=127.0.0.1" in c for c in commands["head_start_ray_commands"] if "ray start" in c):
        problems.append("head `ray start` does not bind the dashboard to 127.0.0.1")
    if config.get("file_mounts", {}).get("~/.ray/auth_token") != "~/.ray/auth_token":
        problems.append("the token does not reach the nodes from the local ~/.ray/auth_token")
    return problems


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_keeps_token_auth_on_and_the_dashboard_private(name):
    assert launcher_security_problems(load(name)) == []


def test_launcher_security_check_catches_an_open_dashboard_and_auth_off():
    config = load("aws.yaml")
    opened = copy.deepcopy(config)
    opened["head_start_ray_commands"] = [c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
                                         for c in opened["head_start_ray_commands"]]
    assert len(launcher_security_problems(opened)) == 2
    no_auth = copy.deepcopy(config)
    no_auth["worker_start_ray_commands"] = [c.replace("export RAY_AUTH_MODE=token;", "")
                                            for c in no_auth["worker_start_ray_commands"]]
    assert launcher_security_problems(no_auth) == ["worker_start_ray_commands: `ray start` without "
                                                   "RAY_AUTH_MODE=token exported first"]


def documented_sweep_command(path: Path) -> str:
    """The `python jobs/sweep.py ...` line of a file's usage comment."""
    commands = re.findall(r"^#\s+(python jobs/sweep\.py .*)$", path.read_text(), re.MULTILINE)
    assert len(commands) == 1, f"{path.name}: expected one documented sweep command"
    return commands[0]


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_documented_sweep_command_is_valid_and_fits_the_cluster(name):
    config = load(name)
    settings, args = parse_sweep_command(documented_sweep_command(CLUSTER / name))
    scheme = {"aws": "s3://", "gcp": "gs://"}[config["provider"]["type"]]
    assert args.storage_path.startswith(scheme), "multi-node runs need storage every node reaches"
    assert settings.preset == "full" and settings.gpus_per_worker == 1
    gpus = sum(t["max_workers"] * t["resources"]["GPU"] for t in gpu_node_types(config).values())
    assert settings.max_concurrent_trials * settings.workers_per_trial <= gpus


# ---------------------------------------------------------------------------------------------
# KubeRay RayJob


def ray_containers(job: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    spec = job["spec"]["rayClusterSpec"]
    groups = {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec["workerGroupSpecs"]}}
    return {name: group["template"]["spec"]["containers"] for name, group in groups.items()}


def gpu_limit(container: dict[str, Any]) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def test_rayjob_runs_the_sweep_on_shared_storage_and_cleans_up():
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    entrypoint = job["spec"]["entrypoint"]
    assert entrypoint.startswith("python jobs/sweep.py ")
    settings, args = parse_sweep_command(entrypoint)
    assert args.storage_path.startswith(("s3://", "gs://"))
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    gpu_groups = [g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
                  if any(gpu_limit(c) for c in g["template"]["spec"]["containers"])]
    gpus = sum(g["maxReplicas"] * max(gpu_limit(c) for c in g["template"]["spec"]["containers"])
               for g in gpu_groups)
    assert settings.gpus_per_worker == 1
    assert settings.max_concurrent_trials * settings.workers_per_trial <= gpus


def test_rayjob_cluster_is_the_pinned_ray_with_autoscaling_gpu_workers():
    spec = rayjob()["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["enableInTreeAutoscaling"] is True
    containers = ray_containers(rayjob())
    for group, group_containers in containers.items():
        match = IMAGE.fullmatch(group_containers[0]["image"])
        assert match and match["ray"] == RAY_VERSION, group_containers[0]["image"]
    assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0"
    gpu_groups = [g for g in spec["workerGroupSpecs"] if gpu_limit(g["template"]["spec"]["containers"][0]) >= 1]
    assert gpu_groups, "no worker group with nvidia.com/gpu in its limits"
    for group in gpu_groups:
        assert group["minReplicas"] == 0 and group["maxReplicas"] >= PRESETS["full"].workers_per_trial
        container = group["template"]["spec"]["containers"][0]
        assert container["image"].endswith("-gpu")
        assert float(container["resources"]["limits"]["cpu"]) >= PRESETS["full"].cpus_per_worker


def test_rayjob_runtime_env_installs_the_pinned_versions():
    runtime_env = yaml.safe_load(rayjob()["spec"]["runtimeEnvYAML"])
    assert runtime_env["working_dir"]
    requirements = {_normal(Requirement(p).name): Requirement(p) for p in runtime_env["pip"]["packages"]}
    assert "ray" not in requirements, "the image provides the pinned Ray; a pip ray could replace it"
    assert "and-cuda" in requirements["tensorflow"].extras
    assert str(requirements["tensorflow"].specifier) == "==2.21.*"
    assert str(requirements["tf-keras"].specifier) == "==2.21.*"
    for name, requirement in requirements.items():
        assert PINS[name] in requirement.specifier, f"{name}: {requirement.specifier} excludes the pin {PINS[name]}"


def k8s_security_problems(job: dict[str, Any]) -> list[str]:
    problems = []
    spec = job["spec"]["rayClusterSpec"]
    head = spec["headGroupSpec"]
    if head.get("serviceType", "ClusterIP") in ("LoadBalancer", "NodePort"):
        problems.append(f"head service is {head['serviceType']}")
    if head.get("enableIngress"):
        problems.append("head has an Ingress")
    if head.get("rayStartParams", {}).get("dashboard-host") == "0.0.0.0":
        problems.append("dashboard-host 0.0.0.0 set explicitly")
    auth = spec.get("authOptions", {})
    if auth.get("mode") != "token":
        problems.append("authOptions.mode is not token")
    for group, containers in ray_containers(job).items():
        env = {e["name"]: e for e in containers[0].get("env", [])}
        if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
            problems.append(f"{group}: RAY_AUTH_MODE is not token")
        token = env.get("RAY_AUTH_TOKEN", {})
        if "value" in token:
            problems.append(f"{group}: literal RAY_AUTH_TOKEN")
        secret = token.get("valueFrom", {}).get("secretKeyRef", {})
        if secret.get("name") != auth.get("secretName") or secret.get("key") != "auth_token":
            problems.append(f"{group}: RAY_AUTH_TOKEN is not taken from the authOptions Secret")
    return problems


def test_rayjob_keeps_token_auth_on_and_the_dashboard_in_cluster():
    assert k8s_security_problems(rayjob()) == []


def test_k8s_security_check_catches_a_public_service_and_a_literal_token():
    job = rayjob()
    exposed = copy.deepcopy(job)
    exposed["spec"]["rayClusterSpec"]["headGroupSpec"]["serviceType"] = "LoadBalancer"
    assert k8s_security_problems(exposed) == ["head service is LoadBalancer"]
    literal = copy.deepcopy(job)
    worker = literal["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["env"] = [{"name": "RAY_AUTH_MODE", "value": "token"}, {"name": "RAY_AUTH_TOKEN", "value": "x" * 8}]
    assert k8s_security_problems(literal) == ["gpu: literal RAY_AUTH_TOKEN",
                                              "gpu: RAY_AUTH_TOKEN is not taken from the authOptions Secret"]


# ---------------------------------------------------------------------------------------------
# Every file: no secrets, auth never off, placeholders marked, the guide points at each file


CLUSTER_FILES = sorted(p for p in CLUSTER.iterdir() if p.is_file())


def secret_findings(text: str) -> list[str]:
    patterns = {
        "a 64-hex-digit string (the shape of a Ray token)": r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])",
        "an AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
        "aws_secret_access_key": r"(?i)aws_secret_access_key",
        "a private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        "a GCP service-account key": r"\"private_key\"\s*:",
    }
    return [what for what, pattern in patterns.items() if re.search(pattern, text)]


@pytest.mark.parametrize("path", CLUSTER_FILES + [GUIDE], ids=lambda p: p.name)
def test_no_credentials_in_cluster_files_or_the_guide(path):
    assert secret_findings(path.read_text()) == []


def test_secret_scan_has_teeth():
    assert secret_findings("RAY_AUTH_TOKEN=" + "ab12" * 16) == ["a 64-hex-digit string (the shape of a Ray token)"]
    assert secret_findings("aws_secret_access_key = x\nkey AKIAABCDEFGHIJKLMNOP") == [
        "an AWS access key id", "aws_secret_access_key"]


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_token_auth_is_never_switched_off(path):
    text = path.read_text()
    assert not re.search(r"RAY_AUTH_MODE\W{1,4}(disabled|off|none|false)", text, re.IGNORECASE)
    assert not re.search(r"mode:\s*['\"]?disabled", text)
    assert not re.search(r"dashboard-host\W{1,4}0\.0\.0\.0", text)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS + (RAYJOB.name,))
def test_every_placeholder_is_marked_change_me(name):
    lines = (CLUSTER / name).read_text().splitlines()
    placeholders = 0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        if PLACEHOLDER.search(line.split(" #", 1)[0]):
            placeholders += 1
            window = lines[max(0, i - 4):i + 1]
            assert any(MARKER in w for w in window), f"{name}:{i + 1}: placeholder without '{MARKER}': {line.strip()}"
    assert placeholders > 0, f"{name}: expected the bucket/image/account placeholders to be marked"


def test_guide_and_readme_cover_each_cluster_file():
    guide = GUIDE.read_text()
    readme = (CLUSTER / "README.md").read_text()
    for name in LAUNCHER_CONFIGS:
        assert f"ray up cluster/{name}" in guide and f"ray down cluster/{name}" in guide
        assert f"ray dashboard cluster/{name}" in guide
        assert name in readme
    assert "kubectl apply -f cluster/kuberay-rayjob.yaml" in guide and "kuberay-rayjob.yaml" in readme
    assert "RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir ." in guide
    assert "ray get-auth-token --generate" in guide
