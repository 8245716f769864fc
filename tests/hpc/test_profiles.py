"""Cluster profiles: resolution, overrides, and checks that fail before submission."""

from __future__ import annotations

import pytest

from mitoscale.cli import main
from mitoscale.cluster import get_client
from mitoscale.cluster.profiles import (
    JobqueueProfile,
    LocalProfile,
    available_profiles,
    resolve_profile,
)
from mitoscale.errors import ClusterError, ConfigError

from .helpers import cluster_opt_args, slurm_profile_opts


def test_shipped_profiles_all_validate():
    for name in ("local", "address", "slurm", "pbs", "lsf", "sge", "cuda"):
        assert resolve_profile(name).kind == name
    assert {"local", "slurm", "cuda"} <= set(available_profiles())


def test_single_key_overrides_and_profile_file(tmp_path):
    p = resolve_profile("slurm", ["queue=gpu", "memory=16GiB", "processes=2", "cores=4"])
    assert isinstance(p, JobqueueProfile)
    assert (p.queue, p.worker_memory_bytes()) == ("gpu", 8 * 2**30)
    f = tmp_path / "mysite.yaml"
    f.write_text("kind: pbs\nqueue: workq\naccount: proj1\n")
    p = resolve_profile(str(f), ["walltime=04:00:00"])
    assert (p.kind, p.queue, p.account, p.walltime) == ("pbs", "workq", "proj1", "04:00:00")


def test_profiles_found_by_name_on_search_path(tmp_path, monkeypatch):
    (tmp_path / "bigmem.yaml").write_text("kind: slurm\nqueue: bigmem\nmemory: 64GiB\n")
    monkeypatch.setenv("MITOSCALE_CLUSTER_PATH", str(tmp_path))
    p = resolve_profile("bigmem")
    assert (p.kind, p.queue, p.memory) == ("slurm", "bigmem", "64GiB")
    assert "bigmem" in available_profiles()


def test_unknown_profile_and_bad_keys_are_one_line_errors(tmp_path):
    with pytest.raises(ClusterError, match="unknown cluster profile 'slrum'.*slurm"):
        resolve_profile("slrum")
    with pytest.raises(ConfigError, match="unknown key 'memroy'"):
        resolve_profile("slurm", ["memroy=8GiB"])
    with pytest.raises(ConfigError, match="not a memory size"):
        resolve_profile("slurm", ["memory=lots"])
    with pytest.raises(ClusterError, match="not found"):
        resolve_profile(str(tmp_path / "missing.yaml"))


def test_cli_unknown_profile_exits_2_with_one_line(tmp_path, capsys):
    rc = main(["simulate", "--n-images", "2", "--out", str(tmp_path / "c.zarr"),
               "--cluster", "nosuchprofile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("mitoscale simulate: error: unknown cluster profile 'nosuchprofile'")


def test_local_profile_runs_a_local_cluster_on_loopback():
    p = resolve_profile("local", ["n_workers=1"])
    assert isinstance(p, LocalProfile)
    with get_client(p) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert client.scheduler_info()["address"].startswith("tcp://127.0.0.1:")
        assert client.dashboard_link.startswith("http://127.0.0.1:")


def test_cuda_profile_without_gpu_or_dask_cuda_is_a_clear_error():
    with pytest.raises(ClusterError, match="cluster profile cuda"):
        with get_client("cuda"):
            pass


@pytest.mark.slurm
@pytest.mark.parametrize("opts, message", [
    (["queue=null"], "no queue set.*this cluster has: debug"),
    (["queue=nosuchpartition"], "queue 'nosuchpartition' does not exist.*debug"),
    (["memory=3GiB", "processes=2", "cores=2"], "gives each worker 1.50 GiB, below the 2.00 GiB"),
    (["walltime=2h"], "walltime '2h' is not valid for slurm"),
])
def test_bad_slurm_profiles_fail_before_any_job_is_submitted(slurm_clean, tmp_path, capsys,
                                                             opts, message):
    before = slurm_clean.submitted_jobs()
    argv = ["simulate", "--n-images", "2", "--out", str(tmp_path / "c.zarr"), "--cluster", "slurm",
            *cluster_opt_args(slurm_profile_opts(tmp_path) + opts)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mitoscale simulate: error: cluster profile slurm: ")
    import re
    assert re.search(message, err), err
    assert slurm_clean.submitted_jobs() == before


def test_batch_profile_without_the_batch_system_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no qsub/bsub here
    for kind in ("pbs", "lsf", "sge"):
        with pytest.raises(ClusterError, match=f"cluster profile {kind}: .* not found on PATH"):
            with get_client(kind, options=["queue=q"]):
                pass


@pytest.mark.slurm
def test_pipeline_checks_the_batch_profile_before_any_stage_runs(slurm_clean, tmp_path, capsys):
    import yaml

    cfg = {"simulate": {"n_images": 2, "set": {"corpus.crops_per_side": 1}},
           "segment": {"enabled": False}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = slurm_clean.submitted_jobs()
    argv = ["run", "--config", str(path), "--out", str(tmp_path / "run"), "--cluster", "slurm",
            *cluster_opt_args(slurm_profile_opts(tmp_path) + ["queue=nosuchpartition"])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "queue 'nosuchpartition' does not exist" in err
    assert slurm_clean.submitted_jobs() == before
    assert not (tmp_path / "run" / "corpus.zarr").exists()


def test_mitoscale_schedulers_keep_short_message_logs(tmp_path, capsys):
    """Dask's scheduler keeps its last N messages per worker, task payloads included: N is bounded."""
    from distributed import Client, LocalCluster

    from mitoscale.cluster.launch import LOG_LENGTH

    with get_client(resolve_profile("local", ["n_workers=1"])) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        lengths = client.run_on_scheduler(
            lambda dask_scheduler: [b.recent_message_log.maxlen for b in dask_scheduler.stream_comms.values()])
        assert lengths == [LOG_LENGTH]
    # a scheduler started by hand with Dask's default (1,000) gets one line saying how to bound it
    with LocalCluster(n_workers=0, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        with get_client(scheduler=cluster.scheduler_address) as client:
            pass
    err = capsys.readouterr().err
    assert "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH" in err
