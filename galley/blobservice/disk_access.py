"""Disk and snapshot access sessions (beginGetAccess / endGetAccess) and their blob accounts.

A session lives in $GALLEY_HOME/disk-access/{id}/: `session.json` (mode 0600: the disk, the
access level, the expiry, and the session's random 32-byte signing key, which is never logged
nor returned except inside the SAS's signature) and, for a Write session, the page store's
overlay and ledger (page_store.py). The SAS names the account `md-{id}`, so a revoked or expired
session's URL finds no account and is refused (403 AuthenticationFailed).

A session's files are in the home of the node that granted it. On several nodes, that node is
recorded as the session's holder (session_holders.py), and the others forward the session's blob
requests, grants and revokes to it (api/forwarding.py). When the holder is lost and the session
has run out, the node a grant, revoke or blob request of the session reaches ends it as the
holder's expiry would (`take_over`); the holder, if it ever starts again, discards its copy.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from ..content.chunks import CHUNK_SIZE
from ..content.vhd import VhdFooter
from ..domain import disk_access as rules
from ..domain.resource import Resource
from . import sas
from .accounts import PERMISSION, BlobRequest, PageBlob
from .errors import BlobError, authentication_failed, invalid_header, permission_mismatch
from .page_store import PageStore
from .session_holders import HeldElsewhere, SessionHolders

log = logging.getLogger("galley.blobservice.disk_access")
# How often a worker node looks for lost nodes' sessions that ran out (sweep_orphans).
ORPHAN_SWEEP_SECONDS = 60.0
BLOB_NAME = "abcd"
VHD_FIXED = 2


class Session:
    def __init__(self, folder: Path, record: dict) -> None:
        self.folder, self.record = folder, record
        self.key = base64.b64decode(record["key"])
        self.started = datetime.fromtimestamp(record["started"], timezone.utc)
        self.pages: PageStore | None = None
        self._busy = 0
        self._idle = threading.Condition()

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def account(self) -> str:
        return f"md-{self.id}"

    @property
    def expired(self) -> bool:
        return time.time() >= self.record["expires"]

    def enter(self) -> None:
        with self._idle:
            self._busy += 1

    def leave(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=60)


class _ContentBlob:
    """A Read session's blob: the disk's content followed by a fixed VHD footer."""

    def __init__(self, reader, started: datetime, etag: str) -> None:
        self.reader = reader
        self.footer = VhdFooter.new(VHD_FIXED, reader.virtual_size).pack() if reader.virtual_size % 512 == 0 else b""
        self.size = reader.virtual_size + len(self.footer)
        self.last_modified, self.etag = started, etag

    def read(self, offset: int, length: int) -> bytes:
        vsize = self.reader.virtual_size
        head = self.reader.read(offset, min(length, max(0, vsize - offset))) if offset < vsize else b""
        tail_from = max(offset, vsize) - vsize
        tail = self.footer[tail_from:tail_from + (length - len(head))]
        return head + tail

    def page_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for a, n, data in self.reader.extents():
            if data:
                runs.append((a, a + n))
        if self.footer:
            runs.append((self.reader.virtual_size, self.size))
        merged: list[tuple[int, int]] = []
        for a, b in runs:
            a, b = max(a, start), min(b, end)
            if a >= b:
                continue
            if merged and merged[-1][1] == a:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def write_pages(self, offset, data):
        raise permission_mismatch()

    clear_pages = write_pages


class _UploadBlob:
    """A Write session's blob: the page store, entered and left around each call so that
    endGetAccess waits for the writes in flight."""

    def __init__(self, session: Session) -> None:
        self.session, self.pages = session, session.pages
        self.size = session.record["size"]
        self.last_modified, self.etag = session.started, f'"0x{session.id.upper()}"'

    def _run(self, method, *args):
        self.session.enter()
        try:
            if self.session.pages is None:
                raise authentication_failed("This disk access SAS is no longer valid (revoked or expired).")
            return method(*args)
        finally:
            self.session.leave()

    def read(self, offset, length):
        return self._run(self.pages.read, offset, length)

    def page_ranges(self, start, end):
        return self._run(self.pages.page_ranges, start, end)

    def write_pages(self, offset, data):
        return self._run(self.pages.write_pages, offset, data)

    def clear_pages(self, offset, length):
        return self._run(self.pages.clear_pages, offset, length)


class DiskAccount:
    """The blob account `md-{session}`: one container and one blob, reachable with the session's SAS."""

    def __init__(self, access: "DiskAccess", session: Session) -> None:
        self.access, self.session, self.name = access, session, session.account

    def authorize(self, request: BlobRequest) -> None:
        resource = sas.canonical_resource(self.name, request.container or "", request.blob)
        need = PERMISSION.get(request.operation, "w")
        sas.verify(self.session.key, request.query, resource, need=need, scheme=request.scheme)
        if self.session.expired:
            raise authentication_failed("The disk access session has expired.")
        if request.container != self.session.record["container"] or request.blob != BLOB_NAME:
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")

    def page_blob(self, container: str, blob: str) -> PageBlob | None:
        if self.session.record["access"] == rules.WRITE:
            return _UploadBlob(self.session)
        return self.access.content_blob(self.session)

    def create_page_blob(self, container: str, blob: str, size: int) -> PageBlob:
        if self.session.record["access"] != rules.WRITE:
            raise permission_mismatch()
        if size != self.session.record["size"]:
            raise invalid_header("x-ms-blob-content-length", str(size),
                                 f"This disk's blob is {self.session.record['size']} bytes (its uploadSizeBytes).")
        blob = _UploadBlob(self.session)
        blob._run(self.session.pages.reset)
        return blob


class DiskAccess:
    """Grants, revokes and expires sessions; the resolver of `md-…` blob accounts."""

    def __init__(self, home: Path, service, content, holders: SessionHolders | None = None) -> None:
        self.folder = home / "disk-access"
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.service, self.content = service, content
        self.holders = holders or SessionHolders(None, None)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.RLock()
        self._timers: dict[str, threading.Timer] = {}
        self._sweeping: threading.Event | None = None
        for path in sorted(self.folder.glob("*/session.json")):
            try:
                self._load(path.parent)
            except Exception:  # noqa: BLE001 - one damaged session must not stop the server
                log.exception("disk access session %s could not be loaded", path.parent.name)

    # ---- resolver ----------------------------------------------------------------------------------
    def resolve(self, name: str) -> DiskAccount | None:
        if not name.startswith("md-"):
            return None
        session = self._sessions.get(name[3:])
        if session is None:
            elsewhere = self.holders.elsewhere(session_id=name[3:])
            if elsewhere is not None and elsewhere.orphaned:
                self.take_over(elsewhere)  # the SAS is then refused, as after an expiry on its holder
            elif elsewhere is not None:
                raise elsewhere
            return None
        if session.expired:
            self._end(session, completed=False)
            return None
        return DiskAccount(self, session)

    # ---- grant / revoke ------------------------------------------------------------------------------
    def grant(self, resource_id: str, resource_type: str, body: dict, base_url: str) -> dict:
        level, duration = rules.grant_request(body)
        with self._lock:
            resource = self._settled(resource_id, resource_type)
            kind = "snapshot" if resource_type.lower().endswith("snapshots") else "disk"
            rules.check_grant(resource, level, kind)
            current = self._session_of(resource)
            if current is not None and (current.record["access"] != level or current.expired):
                self._end(current, completed=False)
                current = None
                resource = self.service.get(resource_id, resource_type)
                rules.check_grant(resource, level, kind)
            expires = time.time() + duration
            if current is None:
                current = self._start(resource, level, expires)
            else:  # a second grant of the same level: the same session (and pages), a new expiry
                current.record["expires"] = expires
                self._save(current)
                self.holders.extend(current.id, expires)
                self._arm(current)
            self._set_state(resource_id, rules.check_grant(resource, level, kind))
        return {"accessSAS": self.sas_url(current, base_url), "securityDataAccessSAS": None}

    def revoke(self, resource_id: str, resource_type: str) -> None:
        with self._lock:
            session = self._session_of(self._settled(resource_id, resource_type))
            if session is not None:  # one that ran out (its timer not yet run) ends as an expiry
                self._end(session, completed=not session.expired)

    def sas_url(self, session: Session, base_url: str) -> str:
        container = session.record["container"]
        permissions = "rw" if session.record["access"] == rules.WRITE else "r"
        token = sas.make_token(session.key, sas.canonical_resource(session.account, container, BLOB_NAME),
                               permissions, datetime.fromtimestamp(session.record["expires"], timezone.utc),
                               protocol="https" if base_url.startswith("https") else None)
        return f"{base_url.rstrip('/')}/{session.account}/{container}/{BLOB_NAME}?{token}"

    def content_blob(self, session: Session) -> _ContentBlob:
        found = self.content.repo.disk_contents(session.record["resource_key"])
        if -1 not in found:
            raise BlobError(404, "BlobNotFound", "The disk has no content.")
        content_id = found[-1]
        reader = self.content.reader(content_id, self.content.repo.placements(content_id))
        return _ContentBlob(reader, session.started, f'"0x{session.id.upper()}"')

    # ---- sessions of lost nodes -------------------------------------------------------------------
    def take_over(self, elsewhere: HeldElsewhere) -> bool:
        """End a lost node's session that has run out, as its expiry on that node would have:
        nothing it received becomes content. Only the node whose conditional delete of the
        session's row succeeds changes the disk, in the same transaction; True for that one."""
        held = elsewhere.session
        with self.service.store.write() as tx:
            if not self.holders.take_over(tx.c, elsewhere):
                return False
            self._record_end(tx, held.resource_key, completed=False, virtual_size=None)
        self.content.repo.release_held_content(self._hold_key(held.id))
        log.warning("disk access session %s of lost node '%s' ran out; ended here", held.id, elsewhere.holder.name)
        return True

    def sweep_orphans(self) -> int:
        """End every lost node's session that ran out; how many this node ended. Requests meet
        such sessions lazily; the sweep frees disks nobody touches through this API (a 409 on
        attach or use as a source comes from the diskState alone)."""
        return sum(self.take_over(elsewhere) for elsewhere in self.holders.orphans())

    def start_sweeping(self, every: float = ORPHAN_SWEEP_SECONDS) -> None:
        self._sweeping = stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.sweep_orphans()
                except Exception:  # noqa: BLE001 - the database may be away; next round
                    log.exception("sweeping lost nodes' disk access sessions failed")

        threading.Thread(target=loop, name="galley-disk-access-orphans", daemon=True).start()

    @property
    def sweeping(self) -> bool:
        return self._sweeping is not None and not self._sweeping.is_set()

    def stop_sweeping(self) -> None:
        if self._sweeping is not None:
            self._sweeping.set()

    # ---- internals ---------------------------------------------------------------------------------------
    def _settled(self, resource_id: str, resource_type: str) -> Resource:
        """The disk or snapshot, once a session of it that another node holds is dealt with: a
        lost node's session that has run out is ended here; any other raises HeldElsewhere."""
        resource = self.service.get(resource_id, resource_type)
        elsewhere = self._elsewhere(resource)
        if elsewhere is not None and elsewhere.orphaned:
            self.take_over(elsewhere)
            resource = self.service.get(resource_id, resource_type)  # as whoever ended it left it
            elsewhere = self._elsewhere(resource)
        if elsewhere is not None:
            raise elsewhere
        return resource

    def _elsewhere(self, resource: Resource) -> HeldElsewhere | None:
        if (resource.properties or {}).get("diskState") in rules.ACTIVE_STATES and self._by_resource(resource.key) is None:
            return self.holders.elsewhere(resource_key=resource.key)
        return None

    def _session_of(self, resource: Resource) -> Session | None:
        sid = (resource.properties or {}).get("diskState") in rules.ACTIVE_STATES and self._by_resource(resource.key)
        return sid or None

    def _by_resource(self, key: str) -> Session | None:
        for session in self._sessions.values():
            if session.record["resource_key"] == key:
                return session
        return None

    def _start(self, resource: Resource, level: str, expires: float) -> Session:
        sid = secrets.token_hex(8)
        record = {"id": sid, "resource_id": resource.id, "resource_key": resource.key, "resource_type": resource.type,
                  "access": level, "container": secrets.token_hex(6), "expires": expires, "started": time.time(),
                  "key": base64.b64encode(secrets.token_bytes(32)).decode(), "holder_recorded": True}
        if level == rules.WRITE:
            size = int(resource.properties["creationData"]["uploadSizeBytes"])
            store_id = self.content.locations.home_store(resource.location)
            content_id = self.content.repo.new_content(size, CHUNK_SIZE, store_id)
            self.content.repo.hold_content(content_id, self._hold_key(sid))
            record.update(size=size, store=store_id, content_id=content_id)
        session = Session(self.folder / sid, record)
        session.folder.mkdir(mode=0o700)
        self._save(session)
        self.holders.hold(sid, resource.key, expires)
        return self._open(session)

    def _load(self, folder: Path) -> None:
        record = json.loads((folder / "session.json").read_text())
        reclaimed = self.holders.reclaim(record["id"])  # under this process's node id
        if not reclaimed and record.get("holder_recorded"):  # its row is gone: another node ended it
            log.warning("disk access session %s was ended by another node while this one was away; "
                        "its pages are discarded", record["id"])
            self.content.repo.release_held_content(self._hold_key(record["id"]))
            shutil.rmtree(folder, ignore_errors=True)
            return
        if not reclaimed:  # granted by a version that did not record its sessions in the database
            self.holders.hold(record["id"], record["resource_key"], record["expires"])
        self._open(Session(folder, record))

    def _open(self, session: Session) -> Session:
        record = session.record
        if record["access"] == rules.WRITE:
            session.pages = PageStore(session.folder, record["size"], self.content, record["content_id"],
                                      record["store"])
        self._sessions[session.id] = session
        self._arm(session)
        return session

    def _save(self, session: Session) -> None:
        tmp = session.folder / "session.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(session.record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, session.folder / "session.json")

    def _arm(self, session: Session) -> None:
        old = self._timers.pop(session.id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, session.record["expires"] - time.time())
        timer = threading.Timer(delay + 0.05, self._expire, args=(session.id,))
        timer.daemon = True
        self._timers[session.id] = timer
        timer.start()

    def _expire(self, sid: str) -> None:
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expired:
                try:
                    self._end(session, completed=False)
                except Exception:  # noqa: BLE001 - retried at the next resolve or start
                    log.exception("disk access session %s could not be expired", sid)

    @staticmethod
    def _hold_key(sid: str) -> str:
        return f"disk-access/{sid}"

    def _end(self, session: Session, *, completed: bool) -> None:
        """Revoke (`completed`: a Write session's pages become the disk's content) or expire."""
        with self._lock:
            self._sessions.pop(session.id, None)
            timer = self._timers.pop(session.id, None)
            if timer is not None:
                timer.cancel()
            session.wait_idle()
            record = session.record
            pages, session.pages = session.pages, None
            virtual_size = None
            if pages is not None and completed:
                virtual_size = self._final_size(pages)
                pages.fold(virtual_size)
                self.content.repo.finish_held_content(record["content_id"], self._hold_key(session.id),
                                                      virtual_size, (record["resource_key"], -1))
            self._finish_state(record, completed, virtual_size)
            if pages is not None and not completed:
                self.content.repo.release_held_content(self._hold_key(session.id))
            if pages is not None:
                pages.close()
            shutil.rmtree(session.folder, ignore_errors=True)

    @staticmethod
    def _final_size(pages: PageStore) -> int:
        """The blob holds a fixed VHD (disk + 512-byte footer) as Azure expects; without a footer
        the whole blob is the disk."""
        try:
            VhdFooter.parse(pages.read(pages.size - 512, 512))
            return pages.size - 512
        except Exception:  # noqa: BLE001 - not a VHD footer: raw content
            return pages.size

    def _set_state(self, resource_id: str, state: str) -> None:
        with self.service.store.write() as tx:
            resource = tx.get(resource_id)
            resource.properties["diskState"] = state
            tx.save(resource)

    def _finish_state(self, record: dict, completed: bool, virtual_size: int | None) -> None:
        """The session's row goes and the disk takes its state after the session, in one
        transaction; nothing changes if another node ended the session already (`take_over`)."""
        with self.service.store.write() as tx:
            if self.holders.end(tx.c, record["id"]):
                self._record_end(tx, record["resource_id"], completed, virtual_size)

    @staticmethod
    def _record_end(tx, resource_id: str, completed: bool, virtual_size: int | None) -> None:
        resource = tx.get(resource_id)
        if resource is None:
            return
        state = resource.properties.get("diskState", "Unattached")
        resource.properties["diskState"] = rules.state_after_end(state, completed)
        if virtual_size is not None:
            rules.record_content_size(resource.properties, virtual_size)
        tx.save(resource)

