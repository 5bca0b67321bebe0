"""Launcher arguments, ARP context and the DAG run's conf."""

import datetime as dt

import pytest

from lute.launch.arguments import parse_args
from lute.launch.context import LUTE_LOCATION, arp_context, build_conf
from lute.launch.exits import EXIT_BAD_INPUT, LaunchError
from lute.launch.output import short_task_name


def test_unknown_arguments_are_slurm_arguments_in_order():
    args, slurm = parse_args(
        ["-c", "c.yaml", "-w", "sfx_demo", "--partition=debug", "--ntasks=2", "-e", "x",
         "--account", "acct", "-r", "7", "--debug"]
    )
    assert args.config == "c.yaml"
    assert args.workflow == "sfx_demo"
    assert args.experiment == "x" and args.run == "7" and args.debug
    assert slurm == ["--partition=debug", "--ntasks=2", "--account", "acct"]


def test_prefix_of_our_option_is_not_swallowed():
    # --de would abbreviate --debug under argparse's default; it is Slurm's here
    args, slurm = parse_args(["-c", "c.yaml", "--de", "--tes"])
    assert not args.debug and not args.test
    assert slurm == ["--de", "--tes"]


def test_defaults_match_lute():
    args, slurm = parse_args(["-c", "c.yaml"])
    assert args.workflow == "test"
    assert args.workflow_defn == ""
    assert not (args.admin or args.debug or args.test or args.dry_run)
    assert slurm == []


def test_missing_config_is_exit_2():
    with pytest.raises(LaunchError) as err:
        parse_args(["-w", "test"])
    assert err.value.code == EXIT_BAD_INPUT
    assert "--config" in str(err.value)


def test_by_hand_needs_experiment_and_run():
    args, _ = parse_args(["-c", "c.yaml", "-e", "exp1"])
    with pytest.raises(LaunchError) as err:
        arp_context(args, {}, "tok")
    assert err.value.code == EXIT_BAD_INPUT
    assert "-r" in str(err.value)


def test_by_hand_needs_a_jid_token():
    args, _ = parse_args(["-c", "c.yaml", "-e", "exp1", "-r", "3"])
    with pytest.raises(LaunchError) as err:
        arp_context(args, {}, None)
    assert err.value.code == EXIT_BAD_INPUT
    assert "token" in str(err.value)


def test_by_hand_context_makes_a_fresh_root_job_id_and_bearer():
    args, _ = parse_args(["-c", "c.yaml", "-e", "exp1", "-r", "3"])
    a = arp_context(args, {}, "abc")
    b = arp_context(args, {}, "Bearer abc")
    assert a.experiment == "exp1" and a.run == "3" and not a.from_arp
    assert a.authorization == "Bearer abc" == b.authorization
    assert a.arp_job_id != b.arp_job_id
    assert "abc" not in repr(a)


def test_arp_environment_is_used():
    env = {
        "Authorization": "Bearer arp-token",
        "EXPERIMENT": "mfxl1001021",
        "RUN_NUM": "12",
        "ARP_JOB_ID": "root-1",
        "ARP_LOCATION": "S3DF",
        "JID_UPDATE_COUNTERS": "https://elog/counters",
    }
    args, _ = parse_args(["-c", "c.yaml"])
    ctx = arp_context(args, env, None)
    assert ctx.from_arp
    assert (ctx.experiment, ctx.run, ctx.arp_job_id, ctx.arp_location) == (
        "mfxl1001021", "12", "root-1", "S3DF",
    )
    assert ctx.authorization == "Bearer arp-token"
    assert ctx.jid_update_counters == "https://elog/counters"


def test_conf_has_the_design_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    args, slurm = parse_args(
        ["-c", str(cfg), "-e", "exp1", "-r", "5", "--debug", "--dry-run", "--ntasks=3"]
    )
    ctx = arp_context(args, {"ARP_LOCATION": "S3DF"}, "tok")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    conf = build_conf(args, ctx, slurm, None, user="alice", now=now,
                      authorization="Bearer run-scoped")
    assert conf == {
        "experiment": "exp1",
        "run_id": "5_20260102T030405.000000Z",
        "JID_UPDATE_COUNTERS": None,
        "ARP_ROOT_JOB_ID": ctx.arp_job_id,
        "ARP_LOCATION": "S3DF",
        "Authorization": "Bearer run-scoped",
        "user": "alice",
        "lute_location": str(LUTE_LOCATION),
        "kerb_file": None,  # no KRB5CCNAME: LUTE sends the key as None
            "lute_params": {"config_file": str(cfg), "debug": True},
        "slurm_params": ["--ntasks=3"],
        "dryrun": True,
        "workflow": {},
    }


def test_conf_config_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, slurm = parse_args(["-c", "rel.yaml", "-e", "e", "-r", "1"])
    ctx = arp_context(args, {}, "t")
    conf = build_conf(args, ctx, slurm, {"task_name": "Tester", "next": []}, user="u",
                      now=dt.datetime.now(dt.UTC))
    assert conf["lute_params"]["config_file"] == str(tmp_path / "rel.yaml")
    assert conf["workflow"] == {"task_name": "Tester", "next": []}
    assert conf["dryrun"] is False
    # no token for the conf (Airflow's connection holds it): the key is left out
    assert "Authorization" not in conf


def test_lute_location_is_this_install():
    assert (LUTE_LOCATION / "launch_scripts" / "launch_airflow.py").is_file()


def test_group_prefixes_are_stripped():
    assert short_task_name("Tester") == "Tester"
    assert short_task_name("user_workflow.Tester") == "Tester"
    assert short_task_name("a.b.PeakFinder") == "PeakFinder"
