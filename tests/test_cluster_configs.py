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

from cnn.sweep_file import PRESETS

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


def sweep_cli():
    """jobs/sweep.py, to parse the commands the cluster files run."""
    from jobs import sweep

    return sweep


def parse_sweep_command(command: str):
    """The resolved SweepSettings of `[cd DIR &&] python jobs/sweep.py ...` (fails the test if the CLI refuses it)."""
    words = shlex.split(command)
    if words[0] == "cd":
        assert words[2] == "&&", command
        words = words[3:]
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
    fractional = copy.deepcopy(load("gcp.yaml"))
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


# What describe-instance-types says of the instance types the AWS file uses or a user might
# switch to (the fields Ray's AWS provider reads), for detecting resources without an account.
EC2_CATALOGUE = [
    {"InstanceType": "m5.xlarge", "VCpuInfo": {"DefaultVCpus": 4}, "MemoryInfo": {"SizeInMiB": 16384}},
    {"InstanceType": "g5.xlarge", "VCpuInfo": {"DefaultVCpus": 4}, "MemoryInfo": {"SizeInMiB": 16384},
     "GpuInfo": {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": 1}]}},
    {"InstanceType": "g5.48xlarge", "VCpuInfo": {"DefaultVCpus": 192}, "MemoryInfo": {"SizeInMiB": 786432},
     "GpuInfo": {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": 8}]}},
]

# Ray's AWS provider imports boto3 and botocore at the top; neither is installed here (botocore
# requires python-dateutil < 3, pandas' pin is 4), and detecting resources calls EC2 through
# them. In a fresh process, empty stand-ins let the module import and the catalogue above
# answers its one EC2 call; Ray's own code does the rest.
DETECT_AWS_RESOURCES = """
import json, sys
from unittest import mock
for name in ("boto3", "boto3.exceptions", "boto3.resources", "boto3.resources.base", "botocore",
             "botocore.client", "botocore.config", "botocore.exceptions"):
    sys.modules[name] = mock.MagicMock(__version__="1.99")  # Ray checks boto3's version at import
from ray.autoscaler._private.aws import node_provider
config, catalogue = json.loads(sys.stdin.read())
with mock.patch.object(node_provider, "list_ec2_instances", return_value=catalogue):
    filled = node_provider.AWSNodeProvider.fillout_available_node_types_resources(config)
print(json.dumps({name: t.get("resources", {}) for name, t in filled["available_node_types"].items()}))
"""


def aws_detected_resources(config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The resources `ray up` gives each node type of an AWS config: Ray's detection, then the file's own."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", DETECT_AWS_RESOURCES], input=json.dumps([config, EC2_CATALOGUE]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@functools.cache
def node_resources(name: str) -> dict[str, dict[str, float]]:
    """CPU and GPU of each node type as Ray will see them: detected on AWS, as written on GCP."""
    config = load(name)
    if config["provider"]["type"] == "aws":
        return aws_detected_resources(config)
    return {node: t["resources"] for node, t in config["available_node_types"].items()}


def gpu_node_types(name: str) -> dict[str, dict[str, Any]]:
    config, resources = load(name), node_resources(name)
    return {node: {**t, "resources": resources[node]} for node, t in config["available_node_types"].items()
            if node != config["head_node_type"] and resources[node].get("GPU", 0) >= 1}


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_head_trains_nothing_and_gpu_workers_autoscale_from_zero(name):
    config = load(name)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert node_resources(name)[config["head_node_type"]].get("CPU") == 0, "the file's CPU 0 beats detection"
    workers = gpu_node_types(name)
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
            assert {"onHostMaintenance": "TERMINATE"} in node_config["scheduling"]


def test_aws_gpu_nodes_get_the_gpus_of_their_instance_type():
    """Nothing pins the AWS GPU workers' resources: Ray reads the counts of the instance type, so
    changing g5.xlarge to g5.48xlarge gives 8 GPUs, not the 1 a pinned {"GPU": 1} would keep."""
    config = load("aws.yaml")
    assert config["available_node_types"]["gpu_worker"]["resources"] == {}
    assert {k: v for k, v in node_resources("aws.yaml")["gpu_worker"].items() if k in ("CPU", "GPU")} == \
        {"CPU": 4, "GPU": 1}
    bigger = copy.deepcopy(config)
    bigger["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] = "g5.48xlarge"
    assert aws_detected_resources(bigger)["gpu_worker"]["GPU"] == 8
    pinned = copy.deepcopy(bigger)
    pinned["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 4, "GPU": 1}
    assert aws_detected_resources(pinned)["gpu_worker"]["GPU"] == 1, "a pin overrides what Ray detects"


GCP_VCPUS = re.compile(r"^(?:n1|n2|n2d|g2|a2|a3)-(?:standard|highmem|highcpu|highgpu|megagpu|ultragpu)-(\d+)g?$")


def test_gcp_gpu_nodes_declare_the_cpus_and_gpus_of_their_machine():
    """GCP's provider detects no GPUs, so the file's counts are what Ray believes: they must be
    the machine type's vCPUs and the accelerators attached."""
    for node_type in gpu_node_types("gcp.yaml").values():
        node_config = node_type["node_config"]
        vcpus = GCP_VCPUS.match(node_config["machineType"])
        assert vcpus, node_config["machineType"]
        assert node_type["resources"]["CPU"] == int(vcpus[1])
        assert node_type["resources"]["GPU"] == sum(a["acceleratorCount"] for a in node_config["guestAccelerators"])


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
    gpus = sum(t["max_workers"] * t["resources"]["GPU"] for t in gpu_node_types(name).values())
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
    assert " python jobs/sweep.py " in f" {entrypoint} "
    settings, args = parse_sweep_command(entrypoint)
    assert args.storage_path.startswith(("s3://", "gs://"))
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    gpu_groups = [g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
                  if any(gpu_limit(c) for c in g["template"]["spec"]["containers"])]
    gpus = sum(g["maxReplicas"] * max(gpu_limit(c) for c in g["template"]["spec"]["containers"])
               for g in gpu_groups)
    assert settings.gpus_per_worker == 1
    assert settings.max_concurrent_trials * settings.workers_per_trial <= gpus


DOCKERFILE = CLUSTER / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of cluster/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_rayjob_cluster_runs_the_project_image_with_autoscaling_gpu_workers():
    spec = rayjob()["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["enableInTreeAutoscaling"] is True
    images = {group: containers[0]["image"] for group, containers in ray_containers(rayjob()).items()}
    assert len(set(images.values())) == 1, f"head and workers run the one image built from cluster/Dockerfile: {images}"
    assert PLACEHOLDER.search(images["head"]), "the image is the user's own build, marked CHANGE ME"
    assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0"
    gpu_groups = [g for g in spec["workerGroupSpecs"] if gpu_limit(g["template"]["spec"]["containers"][0]) >= 1]
    assert gpu_groups, "no worker group with nvidia.com/gpu in its limits"
    for group in gpu_groups:
        assert group["minReplicas"] == 0 and group["maxReplicas"] >= PRESETS["full"].workers_per_trial
        container = group["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert float(limits["cpu"]) >= PRESETS["full"].cpus_per_worker * gpu_limit(container)


def test_rayjob_installs_nothing_when_a_pod_starts():
    """The CUDA wheels (about 3 GB) are in the image, not in a runtime environment that every
    new pod would install against Ray's 600-second set-up limit."""
    job = rayjob()
    runtime_env = yaml.safe_load(job["spec"].get("runtimeEnvYAML") or "{}") or {}
    assert not {"pip", "conda", "uv"} & set(runtime_env), runtime_env
    assert job["spec"]["entrypoint"].startswith("cd /home/ray/cnn-sweep && python jobs/sweep.py ")


def test_the_image_is_the_pinned_ray_with_the_project_at_its_pins():
    instructions = dockerfile_instructions()
    base = [args for kind, args in instructions if kind == "FROM"]
    assert len(base) == 1
    match = IMAGE.fullmatch(base[0])
    assert match and match["ray"] == RAY_VERSION and match["py"] == f"{sys.version_info.major}{sys.version_info.minor}"
    assert not match["gpu"], "the CUDA libraries come from the pinned wheels; the -gpu image would add another CUDA"
    runs = [args for kind, args in instructions if kind == "RUN"]
    assert any("pip install" in r and "-c constraints.txt" in r and "'.[gpu]'" in r for r in runs)
    assert all("-c constraints.txt" in r for r in runs if "pip install" in r)
    env = " ".join(args for kind, args in instructions if kind == "ENV")
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env, "else the toolkit mounts no CUDA driver library"
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in env
    workdir = [args for kind, args in instructions if kind == "WORKDIR"]
    assert workdir == ["/home/ray/cnn-sweep"]
    copied = {source for kind, args in instructions if kind == "COPY" for source in args.split()[1:-1]}  # after --chown
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    for needed in {"constraints.txt", "pyproject.toml", *packages}:
        assert needed in copied, f"the image lacks {needed}: every installed package and the lock must be copied"


def test_the_lock_pins_every_cuda_wheel_of_the_gpu_extra():
    """tensorflow[and-cuda] asks for ranges of nvidia-* wheels; constraints.txt fixes each one."""
    from importlib.metadata import requires

    cuda = [Requirement(r) for r in requires("tensorflow") or [] if "and-cuda" in r]
    cuda = [r for r in cuda if r.name.startswith("nvidia-")]
    assert len(cuda) >= 10, cuda
    for requirement in cuda:
        pin = PINS.get(_normal(requirement.name))
        assert pin, f"{requirement.name} is not pinned in constraints.txt"
        assert pin in requirement.specifier, f"{requirement.name}=={pin} is outside {requirement.specifier}"


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
