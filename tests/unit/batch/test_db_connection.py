"""The results DB's one connection: reused, and never shared across processes or threads."""

from __future__ import annotations

import os
import threading

from lute.io.db import ResultsDB


def _record(db: ResultsDB, run: str) -> int:
    return db.start_run(managed_task="M", task="T", experiment="e", run=run, params={})


def test_one_connection_serves_every_operation(tmp_path):
    db = ResultsDB(tmp_path / "lute.db")
    with db._connect() as first:
        pass
    rid = _record(db, "1")
    db.finish_run(rid, status="COMPLETED", exit_code=0)
    with db._connect() as later:
        assert later is first
    db.close()
    assert db.get(rid).status == "COMPLETED"  # reopened after close


def test_a_thread_and_a_forked_copy_open_their_own(tmp_path):
    db = ResultsDB(tmp_path / "lute.db")
    _record(db, "parent")
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            _record(db, "thread")
        except BaseException as exc:  # sqlite3 refuses a connection of another thread
            errors.append(exc)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert errors == []
    pid = os.fork()
    if pid == 0:
        try:
            _record(db, "child")
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _record(db, "parent again")  # the parent's connection still works
    assert sorted(r.run for r in db.runs()) == ["child", "parent", "parent again", "thread"]
    db.close()


def test_existing_schema_is_not_written_again(tmp_path):
    path = tmp_path / "lute.db"
    ResultsDB(path).close()
    before = path.stat().st_mtime_ns
    wal = path.with_name("lute.db-wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    again = ResultsDB(path)
    assert (wal.stat().st_size if wal.exists() else 0) == wal_before
    assert path.stat().st_mtime_ns == before
    again.close()
