"""A real MIT Kerberos KDC on a loopback port, for tests of the Kerberos cache flow.

Needs Debian's ``krb5-kdc``, ``krb5-admin-server`` and ``krb5-user`` (``krb5kdc``, ``kdb5_util``,
``kadmin.local``, ``kinit``, ``klist``). Everything lives in one directory:
the realm's database, ``krb5.conf`` and ``kdc.conf``; ``env()`` is what a
process needs to talk to this KDC.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from lute.launch.ports import free_port_block

REALM = "LUTE.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")


def kerberos_tools_missing() -> list[str]:
    """The MIT Kerberos programs this KDC needs that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None
            and not Path("/usr/sbin", tool).exists()]


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Kdc:
    """One realm's KDC on 127.0.0.1, started and stopped by the test."""

    def __init__(self, directory: Path) -> None:
        missing = kerberos_tools_missing()
        if missing:
            # a missing KDC is a failure, not a skip: CI installs the three packages
            pytest.fail(f"MIT Kerberos tools not installed: {', '.join(missing)} "
                        "(apt-get install krb5-kdc krb5-admin-server krb5-user)", pytrace=False)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port_block()
        self.krb5_conf = directory / "krb5.conf"
        self.kdc_conf = directory / "kdc.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.krb5_conf.write_text(
            f"[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n"
            "  dns_lookup_realm = false\n  udp_preference_limit = 1\n"
            f"[realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{self.port}\n  }}\n"
        )
        self.kdc_conf.write_text(
            f"[kdcdefaults]\n  kdc_ports = {self.port}\n  kdc_tcp_ports = {self.port}\n"
            f"[realms]\n  {REALM} = {{\n"
            f"    database_name = {directory / 'principal'}\n"
            f"    key_stash_file = {directory / 'stash'}\n"
            f"    acl_file = {directory / 'kadm5.acl'}\n"
            "  }\n"
            f"[logging]\n  kdc = FILE:{directory / 'kdc.log'}\n"
        )

    def env(self) -> dict[str, str]:
        """Variables that point the Kerberos tools at this realm."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf)}

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                             env={**os.environ, **self.env()})
        assert out.returncode == 0, f"{argv}: {out.stdout}{out.stderr}"
        return out.stdout

    def start(self) -> None:
        """Create the realm's database and start ``krb5kdc`` in the foreground."""
        self._run(_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", secrets.token_hex(16))
        self.proc = subprocess.Popen(
            [_tool("krb5kdc"), "-n", "-r", REALM], env={**os.environ, **self.env()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, "krb5kdc exited at start"
            assert time.monotonic() < deadline, "krb5kdc did not listen within 30 s"
            time.sleep(0.1)

    def add_principal(self, name: str) -> str:
        """Create ``name@REALM`` with a random password; the password."""
        password = secrets.token_urlsafe(16)
        self._run(_tool("kadmin.local"), "-r", REALM, "-q",
                  f"addprinc -pw {password} {name}@{REALM}")
        return password

    def kinit(self, name: str, password: str, cache: Path) -> str:
        """Get a TGT for ``name`` into the file cache ``cache``; its ``FILE:`` name."""
        ccname = f"FILE:{cache}"
        self._run(_tool("kinit"), "-c", ccname, f"{name}@{REALM}", stdin=password + "\n")
        return ccname

    def stop(self) -> None:
        """Stop ``krb5kdc``."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def __enter__(self) -> Kdc:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def ticket_is_valid(ccname: str, env: dict[str, str] | None = None) -> bool:
    """``klist -s``: the cache holds a ticket that has not expired."""
    return subprocess.run([_tool("klist"), "-s", "-c", ccname], env=env,
                          timeout=30).returncode == 0
