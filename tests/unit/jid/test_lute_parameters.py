"""What LUTE sites put in def.parameters: short Slurm forms, more options, ``-K <cache>``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jid_service.answers import status_of
from jid_service.errors import InvalidRequestError
from jid_service.kerberos_cache import check_kerberos_cache
from jid_service.settings import JIDSettings
from jid_service.slurm_options import JID_OWNED_OPTIONS, OPTION_TABLE
from jid_service.validation import parse_parameters, read_parameters

from .conftest import running_app
from .test_api import start, wait_final

BASE = "/jid/ws"
PROBE = Path(__file__).with_name("krb_probe_task.py")


def _params(config_root: Path, extra: str = "") -> str:
    return f"--taskname Tester --config {config_root / 'test.yaml'} {extra}".strip()


@pytest.mark.parametrize(("extra", "expected"), [
    ("-p milano", ("--partition=milano",)),
    ("-pmilano", ("--partition=milano",)),
    ("-A lcls:data", ("--account=lcls:data",)),
    ("-n 4 -N 1 -c 2", ("--ntasks=4", "--nodes=1", "--cpus-per-task=2")),
    ("-n4 -N0-2 -c8", ("--ntasks=4", "--nodes=1-2", "--cpus-per-task=8")),
    ("-t 01:00:00", ("--time=01:00:00",)),
    ("-t10", ("--time=10",)),
    ("-q normal -C cpu", ("--qos=normal", "--constraint=cpu")),
    ("-w node[01-04] -x node05", ("--nodelist=node[01-04]", "--exclude=node05")),
    ("-G 2", ("--gpus=2",)),
    ("-s", ("--oversubscribe",)),
    ("--mem-per-cpu=2G", ("--mem-per-cpu=2G",)),
    ("--mem-per-gpu 8G", ("--mem-per-gpu=8G",)),
    ("--mail-type=END,FAIL", ("--mail-type=END,FAIL",)),
    ("--mail-user=someone@slac.stanford.edu", ("--mail-user=someone@slac.stanford.edu",)),
    ("--exclude=sdfmilan001,sdfmilan002", ("--exclude=sdfmilan001,sdfmilan002",)),
    ("--nodelist=sdfmilan[001-003]", ("--nodelist=sdfmilan[001-003]",)),
    ("--gpus=a100:4 --gpus-per-node=4", ("--gpus=a100:4", "--gpus-per-node=4")),
    ("--ntasks-per-node=8 --cpus-per-gpu=4", ("--ntasks-per-node=8", "--cpus-per-gpu=4")),
    ("--time-min=30", ("--time-min=30",)),
    ("--requeue", ("--requeue",)),
    ("--no-requeue --partition=milano", ("--no-requeue", "--partition=milano")),
    # LUTE's eLog form: the launcher's own options come first, then these
    ("--partition=milano --account=lcls:mfxl1001021 --ntasks=102",
     ("--partition=milano", "--account=lcls:mfxl1001021", "--ntasks=102")),
])
def test_lute_users_slurm_arguments(settings: JIDSettings, config_root: Path, extra: str,
                                    expected: tuple[str, ...]) -> None:
    assert parse_parameters(_params(config_root, extra), settings)[3] == expected


@pytest.mark.parametrize(("extra", "named"), [
    ("-p milano --partition=roma", "--partition given twice"),
    ("-n 2 -n2", "--ntasks given twice"),
    ("-A a --account b", "--account given twice"),
    ("-p", "-p (--partition) needs a value"),
    ("-p mil;ano", "--partition: bad value"),
    ("-p=milano", "--partition: bad value '=milano'"),
    ("-n 1٣", "--ntasks: bad value"),
    ("-N 0", "--nodes must be at least 1"),
    ("-sX", "'-sX'"),
    ("-Z 1", "'-Z'"),
    ("--mail-type=SOMETIMES", "--mail-type: bad value"),
    ("--mail-user=a b", "'b'"),
    ("--mail-user=$(id)@x", "--mail-user: bad value"),
    ("--exclude=node;rm", "--exclude: bad value"),
    ("--gpus=0", "--gpus: bad value"),
    ("--mem-per-cpu=lots", "--mem-per-cpu: bad value"),
    ("--requeue=yes", "--requeue takes no value"),
    ("--dependency=afterok:1", "--dependency is not allowed"),
])
def test_refused_slurm_arguments(settings: JIDSettings, config_root: Path, extra: str,
                                 named: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_parameters(_params(config_root, extra), settings)
    assert status_of(info.value) == 422
    assert named in info.value.message


@pytest.mark.parametrize("spelling", [
    "--job-name=x", "--output=/tmp/o", "--error /tmp/e", "--wrap=id", "--export=ALL",
    "--chdir=/", "--uid=0", "--gid=0", "--comment=jid:other", "-J x", "-o /tmp/o",
    "-e /tmp/e", "-D /", "-W",
])
def test_options_the_jid_owns_are_refused_even_if_a_site_allows_them(
        settings: JIDSettings, config_root: Path, spelling: str) -> None:
    everything = settings.model_copy(update={
        "slurm_allowed_options": [*settings.slurm_allowed_options, *JID_OWNED_OPTIONS]})
    with pytest.raises(InvalidRequestError, match="is set by the JID"):
        parse_parameters(_params(config_root, spelling), everything)


def test_the_default_allows_the_whole_table(settings: JIDSettings) -> None:
    assert set(settings.slurm_allowed_options) == {option.name for option in OPTION_TABLE}
    assert not JID_OWNED_OPTIONS & set(settings.slurm_allowed_options)


def test_a_site_narrows_the_table_and_gives_its_own_shapes(settings: JIDSettings,
                                                            config_root: Path) -> None:
    site = JIDSettings(**{
        **settings.model_dump(),
        "slurm_allowed_options": ["--partition", "account", "dependency"],
        "slurm_option_patterns": {"partition": "milano|roma", "--dependency": r"afterok:[0-9]+"},
    })
    assert parse_parameters(_params(config_root, "-p roma --dependency=afterok:12"), site)[3] == (
        "--partition=roma", "--dependency=afterok:12")
    with pytest.raises(InvalidRequestError, match="--partition: bad value 'debug'"):
        parse_parameters(_params(config_root, "-p debug"), site)
    with pytest.raises(InvalidRequestError, match="--ntasks is not allowed"):
        parse_parameters(_params(config_root, "-n 2"), site)


def test_a_bad_site_pattern_is_refused_at_start_up(settings: JIDSettings) -> None:
    with pytest.raises(ValueError, match=r"slurm_option_patterns\['partition'\]"):
        JIDSettings(**{**settings.model_dump(), "slurm_option_patterns": {"partition": "(["}})


# --- -K: the Kerberos cache LUTE's operator forwards ------------------------------------

@pytest.fixture
def krb_root(tmp_path: Path) -> Path:
    root = tmp_path / "krb"
    root.mkdir(mode=0o700)
    return root


@pytest.fixture
def cache(krb_root: Path) -> Path:
    path = krb_root / "krb5cc_lute_abc"
    path.write_bytes(b"\x05\x04 a credential cache")
    path.chmod(0o600)
    return path


@pytest.fixture
def krb_settings(settings: JIDSettings, krb_root: Path) -> JIDSettings:
    return settings.model_copy(update={"kerberos_cache_roots": [krb_root]})


@pytest.mark.parametrize("form", ["-K FILE:{c}", "-K {c}", "--KERB FILE:{c}", "--KERB={c}"])
def test_kerberos_cache_is_read_in_every_spelling(krb_settings: JIDSettings, config_root: Path,
                                                  cache: Path, form: str) -> None:
    # where LUTE's operator puts it: after the task's arguments, before Slurm's
    checked = read_parameters(
        _params(config_root, f"--debug {form.format(c=cache)} --partition=milano -n 2"),
        krb_settings)
    assert checked.kerberos_cache == f"FILE:{cache.resolve()}"
    assert checked.slurm_args == ("--partition=milano", "--ntasks=2")
    assert checked.debug


def test_no_kerberos_cache_without_k(krb_settings: JIDSettings, config_root: Path) -> None:
    assert read_parameters(_params(config_root), krb_settings).kerberos_cache is None


def test_kerberos_cache_refusals(krb_settings: JIDSettings, settings: JIDSettings,
                                 config_root: Path, krb_root: Path, cache: Path,
                                 tmp_path: Path) -> None:
    outside = tmp_path / "outside_cc"
    outside.write_bytes(b"x")
    (krb_root / "escape").symlink_to(outside)
    (krb_root / "sub").mkdir()
    cases = {
        f"-K {cache}": (settings, "accepts no Kerberos cache"),
        "-K relative/cc": (krb_settings, "absolute path"),
        f"-K FILE:{krb_root}/sub/../krb5cc_lute_abc": (krb_settings, "must not contain '..'"),
        "-K KEYRING:persistent:0": (krb_settings, "only a FILE: cache"),
        "-K FILE:KCM:0": (krb_settings, "only a FILE: cache"),
        "-K FILE:": (krb_settings, "only a FILE: cache"),
        f"-K {krb_root}/missing": (krb_settings, "no such cache file"),
        f"-K {krb_root}/sub": (krb_settings, "not a regular file"),
        f"-K {outside}": (krb_settings, "not under a Kerberos cache root"),
        f"-K {krb_root}/escape": (krb_settings, "not under a Kerberos cache root"),
        f"-K {cache} --KERB {cache}": (krb_settings, "given twice"),
        "-K": (krb_settings, "-K needs a value"),
        f"-K '{cache}\n'": (krb_settings, "control character U+000A"),
    }
    for extra, (which, named) in cases.items():
        with pytest.raises(InvalidRequestError) as info:
            read_parameters(_params(config_root, extra), which)
        assert named in info.value.message, (extra, info.value.message)


def test_a_cache_of_another_account_is_refused(krb_root: Path, cache: Path) -> None:
    if os.getuid() != 0:
        pytest.fail("chown to another account needs root here (the CI container runs as root)")
    os.chown(cache, 4242, 4242)
    with pytest.raises(InvalidRequestError, match="not owned by the JID's account"):
        check_kerberos_cache(str(cache), [krb_root])


async def test_lute_sequence_with_k_on_local_gives_the_job_the_cache(
        krb_settings: JIDSettings, config_root: Path, cache: Path, auth, doc) -> None:
    """start_job with LUTE's ``-K`` (200), and the job's KRB5CCNAME is the forwarded cache."""
    probing = krb_settings.model_copy(update={"local_command": [sys.executable, str(PROBE)]})
    params = (f"--taskname Tester --config {config_root / 'test.yaml'} -K FILE:{cache} "
              "--partition=milano --ntasks=1")
    async with running_app(probing) as client:
        job = await wait_final(client, await start(client, doc(params=params), auth), auth)
        assert job["status"] == "DONE", job
        r = await client.post(f"{BASE}/exp1/job_log_file", json=job, headers=auth)
        assert r.status_code == 200, r.text
        assert f"KRB5CCNAME=FILE:{cache.resolve()}" in r.json()["value"]
        r = await client.post(f"{BASE}/exp1/start_job", headers=auth, json=doc(
            params=params.replace(str(cache), str(cache.parent / "nope"))))
        assert r.status_code == 422 and "no such cache file" in r.json()["error"]
