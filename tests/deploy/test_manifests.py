"""Every YAML file under deploy/ parses, and the manifests agree with each
other and with the image: ports, probes, non-root security contexts."""
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
YAML_FILES = sorted(list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml")))


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_there_are_manifests():
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert "docker-compose.yml" in names
    assert "k8s/sidecar/training-job.yaml" in names
    assert "k8s/central/tblogd.yaml" in names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path):
    docs = load_all(path)
    assert docs, f"{path} holds no document"


def dockerfile_exposed_ports():
    text = (ROOT / "Dockerfile").read_text()
    ports = set()
    for line in text.splitlines():
        if line.startswith("EXPOSE"):
            ports.update(int(p) for p in line.split()[1:])
    return ports


def pod_specs():
    for path in DEPLOY.glob("k8s/**/*.yaml"):
        for doc in load_all(path):
            if doc.get("kind") == "Job" or doc.get("kind") == "Deployment":
                yield path, doc["spec"]["template"]["spec"]


def test_kustomizations_list_existing_files():
    for k in DEPLOY.glob("k8s/**/kustomization.yaml"):
        doc = yaml.safe_load(k.read_text())
        for res in doc["resources"]:
            assert (k.parent / res).exists(), f"{k}: {res} does not exist"


def test_pods_run_as_non_root_with_read_only_root():
    specs = list(pod_specs())
    assert len(specs) >= 3
    for path, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, path
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (path, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (path, c["name"])


def test_tblogd_containers_probe_the_grpc_port_the_image_exposes():
    exposed = dockerfile_exposed_ports()
    found = 0
    for path, spec in pod_specs():
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if not c["image"].startswith("tblogd"):
                continue
            found += 1
            ports = {p["containerPort"] for p in c["ports"]}
            assert ports <= exposed, (path, ports, exposed)
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["grpc"]["port"] in ports, (path, probe)
            env = {e["name"]: e["value"] for e in c["env"]}
            assert env["TBLOG_LOGDIR"] == "/logs"
    assert found == 2


def test_sidecar_is_a_native_sidecar_sharing_the_socket():
    job = load_all(DEPLOY / "k8s/sidecar/training-job.yaml")[0]
    spec = job["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    trainer_env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert trainer_env["TBLOG_ADDRESS"] == "unix:" + env["TBLOG_UNIX_SOCKET"]


def test_compose_shares_the_log_volume_with_tensorboard():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"tblogd", "tensorboard", "trainer"}
    assert any(v.startswith("logs:/logs") for v in services["tblogd"]["volumes"])
    assert any(v.startswith("logs:/logs") for v in services["tensorboard"]["volumes"])
    assert services["trainer"]["depends_on"]["tblogd"]["condition"] == "service_healthy"


def test_systemd_unit_runs_tblogd_with_sigterm():
    unit = (DEPLOY / "systemd/tblogd.service").read_text()
    assert re.search(r"^ExecStart=/usr/local/bin/tblogd", unit, re.M)
    assert re.search(r"^KillSignal=SIGTERM", unit, re.M)
