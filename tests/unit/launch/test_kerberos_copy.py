"""The launch's private copy of the Kerberos cache (LUTE's flow, one file per launch)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lute.launch.exits import EXIT_BAD_INPUT, LaunchError
from lute.launch.kerberos import copy_cache


@pytest.fixture
def user_cache(tmp_path: Path) -> Path:
    path = tmp_path / "krb5cc_1000"
    path.write_bytes(b"\x05\x04\x00\x0c a real cache's bytes")
    return path


@pytest.mark.parametrize("prefix", ["FILE:", ""])
def test_each_launch_gets_its_own_private_copy(tmp_path: Path, user_cache: Path,
                                               prefix: str) -> None:
    env = {"KRB5CCNAME": f"{prefix}{user_cache}", "LUTE_KRB5_CACHE_DIR": str(tmp_path / "c")}
    first, second = copy_cache(env), copy_cache(env)
    assert first is not None and second is not None
    assert first.path != second.path
    for copy in (first, second):
        assert copy.path.parent == tmp_path / "c"
        assert copy.path.read_bytes() == user_cache.read_bytes()
        assert stat.S_IMODE(copy.path.stat().st_mode) == 0o600
        assert copy.kerb_file == f"FILE:{copy.path}"
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700
    first.remove()
    assert not first.path.exists() and second.path.exists()
    first.remove()  # twice: harmless
    assert user_cache.exists()


def test_no_cache_without_krb5ccname(tmp_path: Path) -> None:
    assert copy_cache({"LUTE_KRB5_CACHE_DIR": str(tmp_path)}) is None
    assert copy_cache({"KRB5CCNAME": ""}) is None


def test_default_directory_is_under_home(user_cache: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    copy = copy_cache({"KRB5CCNAME": str(user_cache)})
    assert copy is not None
    assert copy.path.parent == tmp_path / "home" / ".cache" / "lute" / "krb5"
    copy.remove()


@pytest.mark.parametrize(("name", "named"), [
    ("KEYRING:persistent:1000", "not a file cache"),
    ("KCM:", "not a file cache"),
    ("FILE:", "not a file cache"),
    ("FILE:/nonexistent/krb5cc", "no such cache file"),
])
def test_caches_that_cannot_travel_are_refused(tmp_path: Path, name: str, named: str) -> None:
    with pytest.raises(LaunchError) as info:
        copy_cache({"KRB5CCNAME": name, "LUTE_KRB5_CACHE_DIR": str(tmp_path)})
    assert info.value.code == EXIT_BAD_INPUT and named in str(info.value)
