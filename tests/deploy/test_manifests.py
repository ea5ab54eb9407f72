"""Every YAML file under deploy/ parses, and the manifests agree with each
other and with the images: ports, probes, non-root security contexts, the
three uids (tblogd 10001, TensorBoard 10002, trainer 10003) and the groups
that let a trainer reach the 0660 socket, the multi-node job whose daemons
share one run, and the systemd unit's readable log directory."""
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
    assert "k8s/multinode/training-job.yaml" in names


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


def env_of(container):
    """name -> value, or -> "fieldRef:<path>" for a downward-API variable."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = "fieldRef:" + e["valueFrom"]["fieldRef"]["fieldPath"]
    return env


def dockerfile_user(path):
    users = [line.split()[1] for line in path.read_text().splitlines() if line.startswith("USER")]
    return int(users[-1].split(":")[0])


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
            env = env_of(c)
            assert env["TBLOG_LOGDIR"] == "/logs"
    assert found >= 3


def test_sidecar_is_a_native_sidecar_sharing_the_socket():
    job = load_all(DEPLOY / "k8s/sidecar/training-job.yaml")[0]
    spec = job["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    env = env_of(sidecar)
    trainer_env = env_of(spec["containers"][0])
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


# --- uids and groups -----------------------------------------------------------

TBLOGD_UID = dockerfile_user(ROOT / "Dockerfile")
TRAINER_UID = dockerfile_user(DEPLOY / "trainer/Dockerfile")
TENSORBOARD_UID = dockerfile_user(DEPLOY / "tensorboard/Dockerfile")


def test_the_images_have_three_uids():
    assert (TBLOGD_UID, TENSORBOARD_UID, TRAINER_UID) == (10001, 10002, 10003)


def test_the_image_gives_the_socket_directory_to_its_user():
    # A named volume at /run/tblog starts as a copy of the image's directory:
    # owned by root, tblogd (10001) could not create its socket there.
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"mkdir -p [^\n]*/run/tblog", text)
    assert re.search(r"chown 10001:10001 [^\n]*/run/tblog", text)


def container_identity(spec, container):
    """(uid, set of gids) a container runs with: its own securityContext over
    the pod's, plus fsGroup and supplementalGroups."""
    pod = spec.get("securityContext", {})
    own = container.get("securityContext", {})
    uid = own.get("runAsUser", pod.get("runAsUser"))
    gid = own.get("runAsGroup", pod.get("runAsGroup"))
    groups = {g for g in [gid, pod.get("fsGroup")] if g is not None}
    groups.update(pod.get("supplementalGroups", []))
    return uid, groups


def test_pods_run_tblogd_trainer_and_tensorboard_as_their_images_uids():
    seen = set()
    for path, spec in pod_specs():
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            uid, _ = container_identity(spec, c)
            image = c["image"].split(":")[0]
            want = {"tblogd": TBLOGD_UID, "tblog-trainer": TRAINER_UID,
                    "tblog-tensorboard": TENSORBOARD_UID}[image]
            assert uid == want, (path, c["name"], uid)
            seen.add(uid)
    assert seen == {TBLOGD_UID, TRAINER_UID, TENSORBOARD_UID}


def test_trainers_have_the_group_of_their_sidecars_socket():
    """The socket is 0660 with the daemon's group (TBLOG_UNIX_SOCKET_GROUP, or
    the group it runs as, or a setgid fsGroup volume's): the trainer must be in it."""
    checked = 0
    for path, spec in pod_specs():
        for sidecar in spec.get("initContainers", []):
            env = env_of(sidecar)
            if "TBLOG_UNIX_SOCKET" not in env:
                continue
            _, daemon_groups = container_identity(spec, sidecar)
            socket_groups = ({int(env["TBLOG_UNIX_SOCKET_GROUP"])}
                             if "TBLOG_UNIX_SOCKET_GROUP" in env else daemon_groups)
            for trainer in spec["containers"]:
                if env_of(trainer).get("TBLOG_ADDRESS") != "unix:" + env["TBLOG_UNIX_SOCKET"]:
                    continue
                uid, groups = container_identity(spec, trainer)
                assert uid != TBLOGD_UID, (path, "the trainer should be a uid of its own")
                assert groups & socket_groups, (path, groups, socket_groups)
                checked += 1
    assert checked >= 2


def test_tensorboard_reads_without_re_owning_the_volume():
    doc = load_all(DEPLOY / "k8s/base/tensorboard.yaml")[0]
    spec = doc["spec"]["template"]["spec"]
    # fsGroup would make the kubelet chown the whole log volume at each mount.
    assert "fsGroup" not in spec["securityContext"]
    mounts = spec["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/logs" and m.get("readOnly") for m in mounts)


# --- many daemons, one run ---------------------------------------------------------


def test_multinode_job_has_one_sidecar_per_node_on_one_rwx_volume():
    job = next(d for d in load_all(DEPLOY / "k8s/multinode/training-job.yaml") if d["kind"] == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] >= 2
    spec = job["spec"]["template"]["spec"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    # One pod per node.
    terms = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname"
               and t["labelSelector"]["matchLabels"].items() <= labels.items() for t in terms)
    # The native sidecar; its daemon identity is unique per node and kept by
    # a replacement pod, which starts only once the failed one is gone.
    sidecar = spec["initContainers"][0]
    assert sidecar["image"].startswith("tblogd") and sidecar["restartPolicy"] == "Always"
    env = env_of(sidecar)
    assert env["JOB_COMPLETION_INDEX"] == (
        "fieldRef:metadata.annotations['batch.kubernetes.io/job-completion-index']")
    assert "$(JOB_COMPLETION_INDEX)" in env["TBLOG_DAEMON_ID"]
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    # Every pod on the one ReadWriteMany claim that TensorBoard reads.
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in spec["volumes"] if "persistentVolumeClaim" in v}
    logs_mount = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == env["TBLOG_LOGDIR"])
    claim = claims[logs_mount["name"]]
    pvc = load_all(DEPLOY / "k8s/base/logs-pvc.yaml")[0]
    assert pvc["metadata"]["name"] == claim and "ReadWriteMany" in pvc["spec"]["accessModes"]
    tb = load_all(DEPLOY / "k8s/base/tensorboard.yaml")[0]["spec"]["template"]["spec"]
    assert claim in {v["persistentVolumeClaim"]["claimName"]
                     for v in tb["volumes"] if "persistentVolumeClaim" in v}
    kustomization = yaml.safe_load((DEPLOY / "k8s/multinode/kustomization.yaml").read_text())
    assert "../base" in kustomization["resources"]
    # The trainers of all nodes write one run, each through its own sidecar.
    trainer_env = env_of(spec["containers"][0])
    assert trainer_env["TBLOG_ADDRESS"] == "unix:" + env["TBLOG_UNIX_SOCKET"]
    assert trainer_env["TBLOG_RUN"]
    assert (DEPLOY / "trainer/multinode_example.py").is_file()


def test_every_daemon_has_an_identity_that_outlives_its_pod():
    """A replacement pod's daemon must resume and repair its predecessor's
    files, so the identity is not the pod name (new in each pod)."""
    found = 0
    for path, spec in pod_specs():
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if c["image"].startswith("tblogd"):
                daemon_id = env_of(c)["TBLOG_DAEMON_ID"]
                assert daemon_id and daemon_id != "fieldRef:metadata.name", path
                found += 1
    assert found >= 3


def compose():
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


def volume_at(service, mount_path):
    for v in service.get("volumes", []):
        name, path = v.split(":")[:2]
        if path == mount_path:
            return name
    return None


def uid_of_service(service, image_uid):
    return int(str(service["user"]).split(":")[0]) if "user" in service else image_uid


def test_compose_runs_two_daemons_into_one_volume_and_one_run():
    services = compose()
    daemons = {n: s for n, s in services.items() if s["image"].startswith("tblogd:")}
    assert len(daemons) >= 2
    assert {volume_at(s, "/logs") for s in daemons.values()} == {"logs"}
    ids = [s["environment"]["TBLOG_DAEMON_ID"] for s in daemons.values()]
    assert len(set(ids)) == len(ids), ids
    sockets = [volume_at(s, "/run/tblog") for s in daemons.values()]
    assert len(set(sockets)) == len(sockets), sockets
    # node-0 and node-1: one run, each through another daemon's socket.
    nodes = [s for n, s in services.items() if n.startswith("node-")]
    assert len(nodes) == 2
    assert len({s["environment"]["TBLOG_RUN"] for s in nodes}) == 1
    assert len({s["environment"]["RANK"] for s in nodes}) == 2
    used = set()
    for node in nodes:
        (daemon_name,) = node["depends_on"]
        daemon = daemons[daemon_name]
        assert volume_at(node, "/run/tblog") == volume_at(daemon, "/run/tblog")
        assert node["environment"]["TBLOG_ADDRESS"] == "unix:" + daemon["environment"]["TBLOG_UNIX_SOCKET"]
        used.add(daemon_name)
    assert len(used) == 2


def test_compose_runs_three_uids_and_trainers_join_the_socket_group():
    services = compose()
    for name, s in services.items():
        image = s["image"].split(":")[0]
        if image == "tblogd":
            assert uid_of_service(s, TBLOGD_UID) == TBLOGD_UID, name
        elif image == "tblog-tensorboard":
            assert uid_of_service(s, TENSORBOARD_UID) == TENSORBOARD_UID, name
        else:
            assert image == "tblog-trainer", name
            assert uid_of_service(s, TRAINER_UID) == TRAINER_UID, name
            (daemon_name,) = s["depends_on"]
            daemon_env = services[daemon_name]["environment"]
            socket_group = str(daemon_env.get("TBLOG_UNIX_SOCKET_GROUP", TBLOGD_UID))
            assert socket_group in {str(g) for g in s.get("group_add", [])}, name


# --- systemd -------------------------------------------------------------------------


def unit_settings():
    settings = {}
    for line in (DEPLOY / "systemd/tblogd.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_keeps_the_logs_readable_by_other_users():
    unit = unit_settings()
    # DynamicUser puts the StateDirectory under /var/lib/private (0700).
    assert unit.get("DynamicUser", ["no"]) == ["no"]
    user = unit["User"][0]
    sysusers = (DEPLOY / "systemd/tblogd.sysusers").read_text()
    assert re.search(rf"^u {user}\b", sysusers, re.M)
    env = dict(v.split("=", 1) for v in unit["Environment"])
    state = unit["StateDirectory"][0]
    assert env["TBLOG_LOGDIR"].startswith(f"/var/lib/{state}/")
    assert int(unit["StateDirectoryMode"][0], 8) & 0o005 == 0o005  # others enter and read
    assert int(env["TBLOG_DIR_MODE"], 8) & 0o005 == 0o005
    assert int(env["TBLOG_FILE_MODE"], 8) & 0o004 == 0o004
    # The socket: its directory is reachable, the socket is the group's.
    runtime = unit["RuntimeDirectory"][0]
    assert env["TBLOG_UNIX_SOCKET"].startswith(f"/run/{runtime}/")
    assert int(unit["RuntimeDirectoryMode"][0], 8) & 0o001
    assert env["TBLOG_UNIX_SOCKET_MODE"] == "0660"
    assert env["TBLOG_UNIX_SOCKET_GROUP"] == user
