"""Hostile input gets a clear 4xx naming what is wrong (or an empty log slice), never a 5xx.

NUL and control characters in paths and free text, log offsets far past any
file, digits of other scripts in Slurm values, Slurm options given twice,
bodies that are not JSON, integers written as floats, a token in a query string.
"""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError
from uvicorn.logging import AccessFormatter

from jid_service.access_log import ACCESS_LOGGER, PathOnly, uvicorn_log_config
from jid_service.answers import answer, status_of
from jid_service.errors import InvalidRequestError
from jid_service.settings import JIDSettings
from jid_service.validation import check_config_path, check_executable, parse_parameters

from .test_api import BASE, start, wait_final

LOCATION_LAUNCHER = "/sdf/group/lcls/ds/tools/lute/latest/launch_scripts/submit_slurm.sh"
BODY_ROUTES = ["exp1/start_job", "job_statuses", "exp1/job_log_file", "exp1/job_log",
               "exp1/kill_job", "exp1/render_job", "wait", "exp1/typical_duration"]


def _refused(answer: Any, status: int, *named: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["value"] is None
    for name in named:
        assert name in body["error"], (name, body["error"])
    return body["error"]


# --- NUL and control characters before any filesystem call ---------------------------

@pytest.mark.parametrize("executable", [LOCATION_LAUNCHER + "\x00", "/bin/sh\x00/x",
                                        "\x00", LOCATION_LAUNCHER + "\n", "/bin/\x1bsh"])
async def test_control_character_in_executable_is_422(client, auth, doc, executable) -> None:
    control = doc(definition={"executable": executable})
    for route in ("start_job", "render_job"):
        r = await client.post(f"{BASE}/exp1/{route}", json=control, headers=auth)
        _refused(r, 422, "def.executable", "control character")
    r = await client.get(f"{BASE}/jobs", headers=auth)
    assert r.json()["value"] == []


@pytest.mark.parametrize("executable", [LOCATION_LAUNCHER + "\x00", "/bin/sh\x00", "a\x01b"])
def test_validation_refuses_control_characters_in_executable(settings: JIDSettings,
                                                             executable: str) -> None:
    """The checker refuses them itself, whoever calls it (no ValueError from the OS)."""
    with pytest.raises(InvalidRequestError) as info:
        check_executable(executable, settings)
    assert status_of(info.value) == 422
    assert "def.executable" in info.value.message


async def test_executable_through_a_symlink_loop_is_422(client, auth, doc, settings,
                                                        tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(tmp_path / "loop2", loop)
    os.symlink(loop, tmp_path / "loop2")
    executable = str(loop / "launch_scripts" / "submit_slurm.sh")
    with pytest.raises(InvalidRequestError, match=r"def\.executable"):
        check_executable(executable, settings)
    r = await client.post(f"{BASE}/exp1/start_job",
                          json=doc(definition={"executable": executable}), headers=auth)
    _refused(r, 422, "def.executable")


@pytest.mark.parametrize(("raw", "named"), [
    ("a\x00b", "NUL"),
    ("/etc/\x01passwd", "control character U+0001"),
    ("/etc/passwd\n", "control character U+000A"),
    ("~no-such-user-of-this-host/x.yaml", "must be an absolute path"),
])
def test_config_path_refusals(settings: JIDSettings, raw: str, named: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_config_path(raw, settings)
    assert status_of(info.value) == 422
    assert "--config" in info.value.message and named in info.value.message


async def test_config_path_of_unknown_home_is_422(client, auth, doc) -> None:
    control = doc(params="--taskname Tester --config '~no-such-user-of-this-host/x.yaml'")
    r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
    _refused(r, 422, "--config")


@pytest.mark.parametrize("field", ["def.name", "def.trigger", "def.location", "def.run_as_user",
                                   "user", "def_id", "tool_id", "arp_root_job_id"])
@pytest.mark.parametrize("character", ["\x00", "\x07", "\t", "\n", "\x7f"])
async def test_control_character_in_single_line_text_is_422(client, auth, doc, field,
                                                            character) -> None:
    control = doc()
    holder, key = (control["def"], field[4:]) if field.startswith("def.") else (control, field)
    holder[key] = f"x{character}y"
    r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
    _refused(r, 422, field, f"U+{ord(character):04X}")


async def test_parameters_keep_their_whitespace_but_no_other_control(client, auth, doc,
                                                                    config_root) -> None:
    cfg = config_root / "test.yaml"
    spaced = doc(params=f"--taskname Tester\t--config {cfg}\r\n--partition=debug")
    job = await start(client, spaced, auth)
    assert (await wait_final(client, job, auth))["status"] == "DONE"
    for character in ("\x00", "\x0b", "\x1b"):
        control = doc(params=f"--taskname Tester --config {cfg}{character}")
        r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
        _refused(r, 422, "def.parameters", f"U+{ord(character):04X}")


# --- log offsets past any file ---------------------------------------------------------

async def test_job_log_offset_far_past_the_end_is_an_empty_slice(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc(), auth), auth)
    for offset in (2**44, 2**53 + 1, 2**63 - 1):
        r = await client.post(f"{BASE}/exp1/job_log",
                              json={"job": job, "offset": offset, "limit": 4096}, headers=auth)
        assert r.status_code == 200, (offset, r.text)
        part = r.json()["value"]
        assert part["text"] == ""
        assert part["offset"] == part["next_offset"] == offset
    for offset in (2**63, 2**64, -1):
        r = await client.post(f"{BASE}/exp1/job_log",
                              json={"job": job, "offset": offset}, headers=auth)
        _refused(r, 422, "offset")


# --- Slurm values: ASCII digits only ---------------------------------------------------

# Arabic-Indic (U+0660..), Devanagari (U+0966..) and fullwidth (U+FF10..) digits:
# str.isdigit() and re's \d take them all, int() reads them as numbers
NON_ASCII_DIGITS = [
    ("--ntasks=1\u0663", "--ntasks"),
    ("--nodes=\u0661", "--nodes"),
    ("--nodes=1-\u0664", "--nodes"),
    ("--cpus-per-task=\uff12", "--cpus-per-task"),
    ("--mem=\u0664G", "--mem"),
    ("--time=\u0661\u0660", "--time"),
    ("--time=1-\u0967\u0968:00", "--time"),
    ("--partition=milano\u0661", "--partition"),
]


@pytest.mark.parametrize(("extra", "named"), NON_ASCII_DIGITS)
def test_non_ascii_digits_in_slurm_values(settings: JIDSettings, config_root: Path,
                                          extra: str, named: str) -> None:
    params = f"--taskname Tester --config {config_root / 'test.yaml'} {extra}"
    with pytest.raises(InvalidRequestError) as info:
        parse_parameters(params, settings)
    assert status_of(info.value) == 422
    assert f"Slurm option {named}" in info.value.message


async def test_non_ascii_digits_over_http(client, auth, doc, config_root) -> None:
    for extra, named in NON_ASCII_DIGITS:
        control = doc(params=f"--taskname Tester --config {config_root / 'test.yaml'} {extra}")
        r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
        _refused(r, 422, named)


def test_non_ascii_digits_in_a_site_allowed_option(settings: JIDSettings,
                                                   config_root: Path) -> None:
    """An option without a shape of its own gets the generic one, ASCII only too."""
    wider = settings.model_copy(update={"slurm_allowed_options": ["ntasks-per-node"]})
    params = f"--taskname Tester --config {config_root / 'test.yaml'}"
    assert parse_parameters(f"{params} --ntasks-per-node=3", wider)[3] == (
        "--ntasks-per-node=3",)
    with pytest.raises(InvalidRequestError, match="--ntasks-per-node"):
        parse_parameters(f"{params} --ntasks-per-node=\u0663", wider)


# --- Slurm options given twice ---------------------------------------------------------

@pytest.mark.parametrize(("extra", "named"), [
    ("--partition=a --partition=b", "--partition given twice"),
    ("--ntasks=4 --ntasks=999", "--ntasks given twice"),
    ("--ntasks=4 --ntasks 4", "--ntasks given twice"),
    ("--partition a --time=10 --partition=a", "--partition given twice"),
    ("--exclusive --exclusive=user", "--exclusive given twice"),
    ("--nodes=0-2 --nodes=1-2", "--nodes given twice"),
    ("--partition=a -p b", "--partition given twice"),  # a short form is the same option
])
def test_slurm_option_given_twice(settings: JIDSettings, config_root: Path, extra: str,
                                  named: str) -> None:
    params = f"--taskname Tester --config {config_root / 'test.yaml'} {extra}"
    with pytest.raises(InvalidRequestError) as info:
        parse_parameters(params, settings)
    assert status_of(info.value) == 422
    assert named in info.value.message


async def test_slurm_option_given_twice_over_http(client, auth, doc, config_root) -> None:
    control = doc(params=f"--taskname Tester --config {config_root / 'test.yaml'} "
                         "--ntasks=4 --ntasks=999")
    for route in ("start_job", "render_job"):
        r = await client.post(f"{BASE}/exp1/{route}", json=control, headers=auth)
        _refused(r, 422, "--ntasks given twice")


# --- bodies that are not JSON ----------------------------------------------------------

@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"not json", "application/json", "the body is not valid JSON"),
    (b'{"_id": ', "application/json", "the body is not valid JSON"),
    (b"[1,]", "application/json", "the body is not valid JSON"),
    (b'{"_id": "x"}', "text/plain", "the body is not JSON"),
])
async def test_body_that_is_not_json_is_400(client, auth, route, body, content_type,
                                            message) -> None:
    r = await client.post(f"{BASE}/{route}", content=body,
                          headers={**auth, "Content-Type": content_type})
    _refused(r, 400, message)


async def test_json_body_failing_validation_stays_422(client, auth) -> None:
    r = await client.post(f"{BASE}/job_statuses", json=[{"_id": "x"}], headers=auth)
    _refused(r, 422, "0.experiment: Field required")


# --- integers written as floats --------------------------------------------------------

async def test_run_num_as_an_integral_float(client, auth, doc) -> None:
    job = await start(client, doc(run_num=46.0), auth)
    assert job["run_num"] == 46 and isinstance(job["run_num"], int)
    job = await wait_final(client, job, auth)
    r = await client.post(f"{BASE}/exp1/job_log_file", json=job, headers=auth)
    assert "RUN_NUM=46\n" in r.json()["value"]


@pytest.mark.parametrize("run_num", [46.5, -1.0, 1e10, True])
async def test_run_num_not_a_whole_number_in_range_is_422(client, auth, doc, run_num) -> None:
    r = await client.post(f"{BASE}/exp1/start_job", json=doc(run_num=run_num), headers=auth)
    _refused(r, 422, "run_num")


async def test_other_integer_fields_accept_integral_floats(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc(arp_root_job_id=7.0), auth), auth)
    assert job["arp_root_job_id"] == 7
    echoed = {**job, "exit_code": 0.0}
    r = await client.post(f"{BASE}/job_statuses", json=[echoed], headers=auth)
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/exp1/job_log",
                          json={"job": job, "offset": 0.0, "limit": 100.0}, headers=auth)
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/exp1/job_log",
                          json={"job": job, "offset": 0.5}, headers=auth)
    _refused(r, 422, "offset")


# --- the access log --------------------------------------------------------------------

def _access_record(path: str) -> logging.LogRecord:
    """A record exactly as uvicorn's HTTP protocols log a request."""
    return logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1,
                             '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:50000", "GET", path, "1.1", 200), None)


@pytest.mark.parametrize(("path", "logged"), [
    ("/jid/ws/jobs?token=eyJhbGciOi.secret.part", "/jid/ws/jobs"),
    ("/jid/ws/jobs?experiment=x&Authorization=Bearer%20abc", "/jid/ws/jobs"),
    ("/healthz", "/healthz"),
    ("/jid/ws/jobs?", "/jid/ws/jobs"),
])
def test_access_log_writes_the_path_without_its_query(path: str, logged: str) -> None:
    record = _access_record(path)
    assert PathOnly().filter(record) is True
    line = AccessFormatter(fmt='%(client_addr)s - "%(request_line)s" %(status_code)s',
                           use_colors=False).format(record)
    assert line == f'127.0.0.1:50000 - "GET {logged} HTTP/1.1" 200 OK'
    assert "secret" not in line and "abc" not in line


def test_serve_log_config_filters_uvicorn_access_logger() -> None:
    config = uvicorn_log_config()
    assert "path_only" in config["loggers"][ACCESS_LOGGER]["filters"]
    logger = logging.getLogger("test_hostile_input.access")
    logger.propagate = False
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "filters": config["filters"],
        "handlers": {"keep": {"()": lambda: Keep()}},
        "loggers": {logger.name: {"handlers": ["keep"], "filters": ["path_only"],
                                  "level": "INFO", "propagate": False}},
    })
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/jid/ws/jobs?token=t0k",
                "1.1", 200)
    assert seen == ['127.0.0.1:1 - "GET /jid/ws/jobs HTTP/1.1" 200']


def test_a_value_the_store_refuses_is_the_callers_error_not_an_outage() -> None:
    """Should a value the models let through still be refused by the database."""
    refused = answer(DataError("INSERT ...", {}, ValueError("text cannot contain NUL")))
    assert refused.status_code == 422 and "Retry-After" not in refused.headers
    assert b"NUL" not in refused.body and b"INSERT" not in refused.body
    down = answer(OperationalError("SELECT 1", {}, ValueError("connection refused")))
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
