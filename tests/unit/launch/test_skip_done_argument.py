"""``--skip-done`` asks the run's steps to reuse earlier DONE jobs (conf ``jid_skip_done``)."""

import datetime as dt

from lute.airflow.step_conf import SKIP_DONE_CONF_KEY, skips_done
from lute.launch.arguments import parse_args
from lute.launch.context import arp_context, build_conf

NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def _conf(*extra: str) -> dict:
    args, slurm = parse_args(["-c", "c.yaml", "-e", "exp1", "-r", "5", *extra])
    ctx = arp_context(args, {}, "tok")
    return build_conf(args, ctx, slurm, None, user="alice", now=NOW, authorization=None)


def test_skip_done_sets_the_conf_key_the_operator_reads() -> None:
    conf = _conf("--skip-done")
    assert conf[SKIP_DONE_CONF_KEY] is True
    assert skips_done(conf)


def test_without_it_every_step_is_submitted() -> None:
    conf = _conf()
    assert SKIP_DONE_CONF_KEY not in conf
    assert not skips_done(conf)


def test_it_is_not_taken_for_a_slurm_argument() -> None:
    args, slurm = parse_args(["-c", "c.yaml", "--skip-done", "--partition=debug"])
    assert args.skip_done and slurm == ["--partition=debug"]
