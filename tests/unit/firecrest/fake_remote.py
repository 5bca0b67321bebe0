"""A remote file system behind FirecREST v2's filesystem API, for respx routes.

Direct operations (``ops/mkdir``, ``ops/upload``, ``ops/checksum``, ``ops/ls``,
``ops/download``, ``ops/rm``, ``ops/stat``, ``ops/view``) answer as FirecREST
does. Transfers of large files follow FirecREST v2's S3 data transfer
(``src/lib/datatransfers/s3/s3_datatransfer.py``, ``models.py`` and the job
scripts ``job_s3_downloader.sh``/``job_uploader_multipart.sh`` of
eth-cscs/firecrest-v2, API 2.4+, and the requests pyfirecrest 3.10 makes):

- ``POST transfer/upload`` ``{"path", "transfer_directives": {"file_size",
  "transfer_method": "s3"}}`` -> 201 ``{"transferJob": {...}, "transferDirectives":
  {"transferMethod": "s3", "partsUploadUrls", "completeUploadUrl", "maxPartSize"}}``;
  each part is PUT to its presigned URL (answered with an ``ETag``), then the
  ``CompleteMultipartUpload`` XML is POSTed to ``completeUploadUrl``; the
  transfer job then copies the object to ``path``.
- ``POST transfer/download`` ``{"source_path", "transfer_directives":
  {"transferMethod": "s3"}}`` -> 201 ``{"transferJob": {...}, "transferDirectives":
  {"transferMethod": "s3", "downloadUrl"}}``; the transfer job puts the file into
  the bucket, where ``downloadUrl`` then finds it (404 before).
- the transfer job is a Slurm job: ``GET /compute/{system}/jobs/{id}`` lists it
  ``RUNNING`` once, then ``COMPLETED`` (or ``FAILED`` with its error log written);
  ``DELETE /compute/{system}/jobs/{id}`` cancels it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import xml.etree.ElementTree as ET
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import respx

from .conftest import JOBS_URL, SYSTEM, WORK_DIR, firecrest_error, listed_job

OPS = f"/filesystem/{SYSTEM}/ops"
TRANSFER = f"/filesystem/{SYSTEM}/transfer"
S3_HOST = "s3.example.org"
PART_SIZE = 1024 * 1024
"""The gateway's ``max_part_size`` in these tests: a 3 MiB upload takes three parts."""
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class FakeRemote:
    """Remote files, and the transfer jobs and S3 bucket of FirecREST's staging area."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {WORK_DIR}
        self.removed: list[str] = []
        self.corrupt_uploads = False
        self.corrupt_transfers = False
        self.fail_transfers: str | None = None
        """Error-log text of every transfer job, which then ends FAILED (exit code 1)."""
        self.bodies: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.objects: dict[str, bytes] = {}
        self.parts: dict[str, dict[int, bytes]] = {}
        self.next_job = 9000
        self.part_puts = 0

    # -- direct operations -------------------------------------------------------------

    def mkdir(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.dirs.add(body["sourcePath"])
        return httpx.Response(201, json={"output": {"name": body["sourcePath"], "type": "d"}})

    def upload(self, request: httpx.Request) -> httpx.Response:
        directory = request.url.params["path"]
        if directory not in self.dirs:
            return firecrest_error(404, f"No such file or directory: {directory}")
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.content)
        part = next(message.iter_parts())
        data = part.get_payload(decode=True)
        if self.corrupt_uploads:
            data = data[:-1]  # the SSH channel dropped the last byte
        self.files[f"{directory}/{part.get_filename()}"] = data
        return httpx.Response(204)

    def checksum(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        return httpx.Response(200, json={"output": {
            "algorithm": "SHA256", "checksum": hashlib.sha256(data).hexdigest()}})

    def ls(self, request: httpx.Request) -> httpx.Response:
        root = request.url.params["path"].rstrip("/") + "/"
        assert request.url.params["recursive"] == "true"
        output = [{"name": path[len(root):], "type": "-", "linkTarget": None, "user": "alice",
                   "group": "alice", "permissions": "rw-r--r--",
                   "lastModified": "2026-01-21T08:01:17", "size": str(len(data))}
                  for path, data in sorted(self.files.items()) if path.startswith(root)]
        output.append({"name": "link.txt", "type": "l", "linkTarget": "/etc/passwd",
                       "user": "alice", "group": "alice", "permissions": "rwxrwxrwx",
                       "lastModified": "2026-01-21T08:01:17", "size": "11"})
        return httpx.Response(200, json={"output": output})

    def stat(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        return httpx.Response(200, json={"output": {
            "mode": 33188, "ino": 4324, "dev": 64768, "nlink": 1, "uid": 1000, "gid": 1000,
            "size": len(data), "atime": 1700000000, "mtime": 1700000000,
            "ctime": 1700000000}})

    def view(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        text = data.decode("utf-8", errors="replace")
        return httpx.Response(200, json={"output": {
            "content": text, "fileSize": len(data), "startOffset": 0, "endOffset": 0}})

    def download(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        return httpx.Response(200, content=data,
                              headers={"Content-Type": "application/octet-stream"})

    def rm(self, request: httpx.Request) -> httpx.Response:
        path = request.url.params["path"]
        self.removed.append(path)
        self.files.pop(path, None)
        return httpx.Response(204)

    # -- transfers through the staging area ----------------------------------------------

    def _new_job(self, name: str, target: str, source: str | None, key: str) -> dict[str, Any]:
        job_id = str(self.next_job)
        self.next_job += 1
        work = f"{WORK_DIR}/alice"
        logs = {"outputLog": f"{work}/.f7t_file_handling_job_{uuid.uuid4()}.log",
                "errorLog": f"{work}/.f7t_file_handling_job_error_{uuid.uuid4()}.log"}
        self.jobs[job_id] = {"name": name, "state": "PENDING", "looks": 0, "key": key,
                             "target": target, "source": source, "logs": logs}
        return {"jobId": int(job_id), "system": SYSTEM, "workingDirectory": work, "logs": logs}

    def transfer_upload(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        directives = body["transfer_directives"]
        assert directives["transfer_method"] == "s3"
        key = f"alice/{uuid.uuid4()}/{body['path'].rsplit('/', 1)[1]}"
        parts = -(-int(directives["file_size"]) // PART_SIZE)
        self.parts[key] = {}
        signature = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=" + "ab" * 32
        urls = [f"https://{S3_HOST}/{key}?uploadId=u1&partNumber={n}&{signature}"
                for n in range(1, parts + 1)]
        job = self._new_job("IngressFileTransfer", body["path"], None, key)
        return httpx.Response(201, json={"transferJob": job, "transferDirectives": {
            "transferMethod": "s3", "partsUploadUrls": urls,
            "completeUploadUrl": f"https://{S3_HOST}/{key}?uploadId=u1&{signature}",
            "maxPartSize": PART_SIZE}})

    def transfer_download(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        assert body["transfer_directives"]["transferMethod"] == "s3"
        source = body["source_path"]
        key = f"alice/{source.rsplit('/', 1)[1]}_{uuid.uuid4()}"
        job = self._new_job("OutgressFileTransfer", "", source, key)
        return httpx.Response(201, json={"transferJob": job, "transferDirectives": {
            "transferMethod": "s3",
            "downloadUrl": f"https://{S3_HOST}/{key}?X-Amz-Signature={'cd' * 32}"}})

    def s3(self, request: httpx.Request) -> httpx.Response:
        key = request.url.path.lstrip("/")
        params = request.url.params
        if request.method == "PUT":
            data = request.content
            assert int(request.headers["Content-Length"]) == len(data)
            self.parts[key][int(params["partNumber"])] = data
            self.part_puts += 1
            return httpx.Response(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        if request.method == "POST":  # CompleteMultipartUpload
            root = ET.fromstring(request.content)
            numbers = [int(p.findtext(f"{_S3_NS}PartNumber") or p.findtext("PartNumber"))
                       for p in root]
            stored = self.parts.pop(key)
            assert numbers == sorted(stored)
            self.objects[key] = b"".join(stored[n] for n in numbers)
            return httpx.Response(200, content=b"<CompleteMultipartUploadResult/>")
        data = self.objects.get(key)
        if data is None:
            return httpx.Response(404, content=b"<Error><Code>NoSuchKey</Code></Error>")
        return httpx.Response(200, content=data)

    def job(self, request: httpx.Request, job_id: str) -> httpx.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return firecrest_error(404, "Job not found")
        job["looks"] += 1
        if job["state"] == "PENDING":
            job["state"] = "RUNNING"
        elif job["state"] == "RUNNING":
            self._finish(job)
        exit_code = 1 if job["state"] == "FAILED" else 0
        return httpx.Response(200, json={"jobs": [
            listed_job(job_id, job["state"], exit_code=exit_code, name=job["name"])]})

    def _finish(self, job: dict[str, Any]) -> None:
        if self.fail_transfers is not None:
            job["state"] = "FAILED"
            self.files[job["logs"]["errorLog"]] = self.fail_transfers.encode()
            return
        if job["source"] is None:  # ingress: the object in S3 goes to the target path
            data = self.objects.get(job["key"])
            if data is None:
                return  # not uploaded yet: the job keeps waiting for it
            if self.corrupt_transfers:
                data = data[:-1]
            self.files[job["target"]] = data
        else:  # egress: the file goes into the bucket
            self.objects[job["key"]] = self.files[job["source"]]
        self.files[job["logs"]["outputLog"]] = b"File was successfully transferred\n"
        job["state"] = "COMPLETED"

    def cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        self.cancelled.append(job_id)
        if job_id in self.jobs:
            self.jobs[job_id]["state"] = "CANCELLED"
        return httpx.Response(204)


def route_remote(router: respx.MockRouter, fake: FakeRemote) -> None:
    """Serve ``fake`` on ``router`` (FirecREST's base URL) and on the S3 host."""
    router.post(f"{OPS}/mkdir").mock(side_effect=fake.mkdir)
    router.post(f"{OPS}/upload").mock(side_effect=fake.upload)
    router.get(f"{OPS}/checksum").mock(side_effect=fake.checksum)
    router.get(f"{OPS}/ls").mock(side_effect=fake.ls)
    router.get(f"{OPS}/stat").mock(side_effect=fake.stat)
    router.get(f"{OPS}/view").mock(side_effect=fake.view)
    router.get(f"{OPS}/download").mock(side_effect=fake.download)
    router.delete(f"{OPS}/rm").mock(side_effect=fake.rm)
    router.post(f"{TRANSFER}/upload").mock(side_effect=fake.transfer_upload)
    router.post(f"{TRANSFER}/download").mock(side_effect=fake.transfer_download)
    router.get(url__regex=rf"{JOBS_URL}/(?P<job_id>9\d\d\d)$").mock(side_effect=fake.job)
    router.delete(url__regex=rf"{JOBS_URL}/(?P<job_id>9\d\d\d)$").mock(side_effect=fake.cancel)
    router.route(host=S3_HOST).mock(side_effect=fake.s3)


def is_presigned(text: str) -> bool:
    """Whether ``text`` quotes a presigned URL (which must never reach a message or log)."""
    return bool(re.search(r"X-Amz-Signature|" + re.escape(S3_HOST), text))
