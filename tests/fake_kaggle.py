"""A small fake of Kaggle's public API on loopback, to test the real `kaggle` client against.

    with FakeKaggle(users={"tester": "secret"}) as fake:    # http://127.0.0.1:<port>
        fake.archives["tiny-comp"] = zip_bytes              # what DownloadDataFiles serves
        fake.fail("DownloadDataFiles", 429, times=2)        # the next two calls answer 429
        ...
        fake.calls                                          # [(method, json body, headers)]

It speaks what /work/shared/KAGGLE-API.md records of kaggle 2.2.5 / kagglesdk 0.1.38: every
call is `POST /api/v1/<Service>/<Method>` with a JSON body and a JSON reply, errors are
`{"code", "message"}` with the same HTTP status; DownloadDataFiles redirects to
`/files/<slug>.zip`; a submission is StartSubmissionUpload -> PUT to its `createUrl` ->
CreateSubmission -> ListSubmissions (paged: pageSize, pageToken -> nextPageToken) /
GetSubmission; GetSubmissionLimits answers with the real fields (numToday, numTotal,
numAllowedNow). Scoring can be held back (`scoring = False`: every submission stays PENDING
until it is set True) and can depend on the uploaded bytes (`scorer`). Credentials: HTTP Basic with one of
`users`, or a Bearer token in `tokens` (IntrospectToken answers for those). It serves both
as the API host (the test process points the client at it) and as an HTTP proxy (a
subprocess with HTTP_PROXY sends absolute-form paths such as `http://localhost/api/...`).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

COMPETITIONS = "competitions.CompetitionApiService"


def make_zip(members: dict[str, bytes | str]) -> bytes:
    """A zip archive holding `members` (name -> content), deflated as Kaggle's are, names taken
    as given (even '../x')."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED  # a ZipInfo's own type wins over the ZipFile's
            zf.writestr(info, data)
    return buf.getvalue()


class FakeKaggle:
    def __init__(self, users: dict[str, str] | None = None, tokens: dict[str, str] | None = None):
        self.users = dict(users or {"tester": "secret"})
        self.tokens = dict(tokens or {})  # bearer token -> username
        self.archives: dict[str, bytes] = {}  # competition slug -> zip served by DownloadDataFiles
        self.rules_not_accepted: set[str] = set()  # slugs that answer 403
        self.uploads: dict[str, bytes] = {}  # upload token -> bytes PUT by the client
        self.submissions: dict[str, list[dict]] = defaultdict(list)  # slug -> newest first
        self.score = {"publicScore": "0.77512", "privateScore": ""}  # what a scored submission gets
        self.pending_polls = 0  # ListSubmissions/GetSubmission answer PENDING this many times first
        self.scoring = True  # False: every submission answers PENDING (Kaggle scoring later)
        self.scorer: Callable[[bytes], dict] | None = None  # uploaded bytes -> {"publicScore", "privateScore"}
        self.daily_limit = 5  # GetSubmissionLimits: numAllowedNow = daily_limit - submissions so far
        self.error_description: str | None = None  # set: scoring ends in ERROR with this description
        self.create_message: str | None = None  # set: CreateSubmission refuses with this message
        self.calls: list[tuple[str, dict, dict]] = []
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKaggle:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, status: int, times: int = 1, message: str | None = None, headers=None) -> None:
        """The next `times` calls of `method` answer `status` (JSON error body) with `headers`."""
        for _ in range(times):
            self._failures[method].append((status, message or f"fake error {status}", dict(headers or {})))

    def called(self, method: str) -> list[dict]:
        return [body for name, body, _ in self.calls if name == method]

    # --- the API --------------------------------------------------------------------

    def _user(self, headers) -> str | None:
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            return user if self.users.get(user) == key else None
        if auth.startswith("Bearer "):
            return self.tokens.get(auth[7:])
        return None

    def _submission_status(self, sub: dict) -> dict:
        if not self.scoring:
            return {**sub["record"], "status": "PENDING"}
        if sub["polls"] < self.pending_polls:
            sub["polls"] += 1
            return {**sub["record"], "status": "PENDING"}
        if self.error_description is not None:
            return {**sub["record"], "status": "ERROR", "errorDescription": self.error_description}
        score = self.scorer(sub["data"]) if self.scorer is not None else self.score
        return {**sub["record"], "status": "COMPLETE", **score}

    def _list(self, slug: str, body: dict) -> dict:
        """One page of `slug`'s submissions, newest first; the page token is the offset."""
        size, start = int(body.get("pageSize") or 20), int(body.get("pageToken") or 0)
        subs = self.submissions[slug]
        reply = {"submissions": [self._submission_status(s) for s in subs[start : start + size]]}
        if start + size < len(subs):
            reply["nextPageToken"] = str(start + size)
        return reply

    def _limits(self, slug: str) -> dict:
        used = len(self.submissions[slug])
        return {"numToday": used, "numTotal": used, "numAllowedNow": max(0, self.daily_limit - used)}

    def api(self, method: str, body: dict, host: str, headers) -> tuple[int, dict, dict]:
        """(status, JSON reply, extra headers) for one API call."""
        if method == "IntrospectToken":
            user = self.tokens.get(body.get("token", ""))
            return 200, ({"active": True, "username": user} if user else {"active": False}), {}
        if self._user(headers) is None:
            return 401, {"code": 401, "message": "Unauthenticated"}, {}
        slug = body.get("competitionName", "")
        if method == "DownloadDataFiles":
            if slug in self.rules_not_accepted:
                return 403, {"code": 403, "message": "You must accept this competition's rules first"}, {}
            if slug not in self.archives:
                return 404, {"code": 404, "message": f"Competition {slug} not found"}, {}
            return 302, {}, {"Location": f"http://{host}/files/{slug}.zip"}
        if method == "StartSubmissionUpload":
            if slug in self.rules_not_accepted:
                return 403, {"code": 403, "message": "You must accept this competition's rules first"}, {}
            token = f"blob-{len(self.uploads) + 1}"
            self.uploads[token] = b""
            return 200, {"token": token, "createUrl": f"http://{host}/upload/{token}"}, {}
        if method == "CreateSubmission":
            token = body.get("blobFileTokens", "")
            if not self.uploads.get(token):
                return 400, {"code": 400, "message": f"Unknown or empty upload {token!r}"}, {}
            if self.create_message is not None:
                return 200, {"message": self.create_message}, {}
            ref = 1000 + sum(len(v) for v in self.submissions.values()) + 1
            record = {
                "ref": ref,
                "fileName": "submission.csv",
                "date": "2024-01-01T00:00:00Z",
                "description": body.get("submissionDescription", ""),
                "totalBytes": len(self.uploads[token]),
            }
            self.submissions[slug].insert(0, {"record": record, "polls": 0, "data": self.uploads[token]})
            return 200, {"message": "Successfully submitted to Fake Competition", "ref": ref}, {}
        if method == "ListSubmissions":
            return 200, self._list(slug, body), {}
        if method == "GetSubmission":
            for subs in self.submissions.values():
                for s in subs:
                    if s["record"]["ref"] == int(body.get("ref", 0)):
                        return 200, self._submission_status(s), {}
            return 404, {"code": 404, "message": "no such submission"}, {}
        if method == "GetSubmissionLimits":
            return 200, self._limits(slug), {}
        return 404, {"code": 404, "message": f"fake Kaggle has no {method}"}, {}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _path(self) -> str:
                return urlsplit(self.path).path if self.path.startswith("http") else self.path.split("?")[0]

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, data: bytes, content_type: str, headers=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                path, raw = self._path(), self._body()
                if not path.startswith("/api/v1/"):
                    return self._send(404, b"{}", "application/json")
                method = path.rsplit("/", 1)[-1]
                body = json.loads(raw or b"{}")
                with fake._lock:
                    fake.calls.append((method, body, dict(self.headers)))
                    if fake._failures[method]:
                        status, message, headers = fake._failures[method].popleft()
                        reply = json.dumps({"code": status, "message": message}).encode()
                        return self._send(status, reply, "application/json", headers)
                    status, reply, headers = fake.api(method, body, self.headers.get("Host", ""), self.headers)
                self._send(status, json.dumps(reply).encode(), "application/json", headers)

            def do_GET(self):
                path = self._path()
                slug = path.removeprefix("/files/").removesuffix(".zip")
                if path.startswith("/files/") and slug in fake.archives:
                    return self._send(200, fake.archives[slug], "application/zip")
                self._send(404, b"not found", "text/plain")

            def do_PUT(self):
                token, data = self._path().removeprefix("/upload/"), self._body()
                with fake._lock:
                    fake.calls.append(("PUT", {"token": token, "bytes": len(data)}, dict(self.headers)))
                    if token not in fake.uploads:
                        return self._send(404, b"", "text/plain")
                    fake.uploads[token] = data
                self._send(200, b"", "text/plain")

        return Handler
