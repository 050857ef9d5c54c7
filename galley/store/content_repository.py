"""SQL for the data plane: chunk manifests, placements of contents in stores, what each store holds.

Garbage collection is safe against concurrent writers because a writer records its references
and touches the store's chunk rows in one transaction before it relies on a chunk being there,
and the collector deletes a chunk only if, in its own transaction, the chunk is unreferenced and
untouched since the collection started (see ContentRepository.delete_if_unreferenced). A
collector killed at any point leaves no row whose object a writer would trust to be there.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Iterator, Iterable

from sqlalchemy import String, cast, delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..domain.resource import IN_PROGRESS
from .sql_store import SqlStore
from .tables import (content_chunks, content_placements, contents, disk_contents, operations, replicas,
                     store_chunks, transfers, upload_leases)

_C, _CC, _DC = contents.c, content_chunks.c, disk_contents.c
_P, _SC, _RP = content_placements.c, store_chunks.c, replicas.c

WRITING, READY = "writing", "ready"
# A store_chunks row's last_seen while garbage collection deletes its object: see delete_if_unreferenced.
DOOMED = -1.0
CHUNK_BYTES = 1024 * 1024  # content.chunks.CHUNK_SIZE (the store layer does not import content)


class ContentDropped(LookupError):
    """A content being written was dropped before it was finished: garbage collection took it for
    abandoned (nothing renewed it within the grace) or its writer was aborted."""


def _insert_ignoring_duplicates(connection, table, rows: list[dict]) -> None:
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing()
    connection.execute(statement, rows)


def _referenced_in_store():
    """A correlated EXISTS: some content placed in the chunk row's store references its digest."""
    return exists().where(_CC.digest == _SC.digest, _P.content_id == _CC.content_id, _P.store == _SC.store)


class ContentRepository:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    # ---- contents ------------------------------------------------------------------------------
    def new_content(self, virtual_size: int, chunk_size: int, store: str) -> str:
        content_id = str(uuid.uuid4())
        with self.sql.write() as tx:
            tx.c.execute(insert(contents).values(id=content_id, virtual_size=virtual_size,
                                                 chunk_size=chunk_size, state=WRITING, data_bytes=0,
                                                 created_at=time.time()))
            tx.c.execute(insert(content_placements).values(content_id=content_id, store=store))
        return content_id

    def add_chunks(self, content_id: str, store: str, entries: list[tuple[int, str, int]]) -> set[str]:
        """Record (index, digest, length) in the manifest; returns the digests the store already holds."""
        digests = sorted({digest for _, digest, _ in entries})
        with self.sql.write() as tx:
            tx.c.execute(insert(content_chunks), [
                {"content_id": content_id, "idx": idx, "digest": digest, "length": length}
                for idx, digest, length in entries])
            return self._touch(tx.c, store, digests)

    def _touch(self, connection, store: str, digests: list[str]) -> set[str]:
        """Mark the store's rows of `digests` as used now; the digests whose object the store
        holds. A row garbage collection doomed counts as absent (its object may be gone): the
        touch takes it back, and the caller writes the object again."""
        if not digests:
            return set()
        now = time.time()
        connection.execute(update(store_chunks).where(_SC.store == store, _SC.digest.in_(digests),
                                                      _SC.last_seen != DOOMED).values(last_seen=now))
        rows = connection.execute(select(_SC.digest).where(_SC.store == store, _SC.digest.in_(digests),
                                                           _SC.last_seen != DOOMED))
        present = {row.digest for row in rows}
        connection.execute(update(store_chunks).where(_SC.store == store, _SC.digest.in_(digests),
                                                      _SC.last_seen == DOOMED).values(last_seen=now))
        return present

    def touch(self, store: str, digests: list[str]) -> set[str]:
        with self.sql.write() as tx:
            return self._touch(tx.c, store, digests)

    def held(self, store: str, digests: list[str]) -> set[str]:
        """Those of `digests` the store's rows list, read without a write lock (a hint: a row may go
        before the caller references it; record_page_writes tells)."""
        if not digests:
            return set()
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_SC.digest).where(_SC.store == store, _SC.digest.in_(digests),
                                                         _SC.last_seen != DOOMED))
            return {row.digest for row in rows}

    def register_stored(self, store: str, items: Iterable[tuple[str, int, int]]) -> None:
        now = time.time()
        with self.sql.write() as tx:
            _insert_ignoring_duplicates(tx.c, store_chunks, [
                {"store": store, "digest": d, "stored_bytes": s, "raw_bytes": r, "last_seen": now}
                for d, s, r in items])

    def finish_content(self, content_id: str, attach: tuple[str, int] | None = None) -> None:
        """Mark a written content ready and, in the same transaction, attach it to a resource's
        disk, so that garbage collection never sees it ready but unowned."""
        with self.sql.write() as tx:
            data_bytes = tx.c.execute(select(func.coalesce(func.sum(_CC.length), 0))
                                      .where(_CC.content_id == content_id)).scalar_one()
            made = tx.c.execute(update(contents).where(_C.id == content_id)
                                .values(state=READY, data_bytes=data_bytes))
            if made.rowcount != 1:
                raise ContentDropped(f"content {content_id} was dropped while it was written")
            if attach is not None:
                self._attach(tx.c, attach, content_id)

    def keep_writing(self, content_id: str) -> None:
        """A content still being written is not stale: garbage collection leaves it alone for
        another `stale_after` (see ContentEngine.collect_garbage)."""
        with self.sql.write() as tx:
            tx.c.execute(update(contents).where(_C.id == content_id, _C.state == WRITING)
                         .values(created_at=time.time()))

    def discard_content(self, content_id: str) -> None:
        with self.sql.write() as tx:
            self._discard(tx.c, content_id)

    @staticmethod
    def _discard(connection, content_id: str) -> None:
        connection.execute(delete(content_chunks).where(_CC.content_id == content_id))
        connection.execute(delete(content_placements).where(_P.content_id == content_id))
        connection.execute(delete(contents).where(_C.id == content_id))

    # ---- contents written in place (disk access sessions, see galley/blobservice/page_store.py) ----
    def hold_content(self, content_id: str, hold_key: str) -> None:
        """Keep a content that is being written for a long time (a disk SAS session) out of garbage
        collection's reach: it is attached, as an OS disk, to `hold_key`, a key no resource has."""
        with self.sql.write() as tx:
            self._attach(tx.c, (hold_key, -1), content_id)

    def set_chunk(self, content_id: str, store: str, idx: int, digest: str, length: int) -> bool:
        """Record (or replace) chunk `idx` of a content being written; True if the store already
        holds that digest (then it need not be written again)."""
        with self.sql.write() as tx:
            tx.c.execute(delete(content_chunks).where(_CC.content_id == content_id, _CC.idx == idx))
            tx.c.execute(insert(content_chunks).values(content_id=content_id, idx=idx, digest=digest,
                                                       length=length))
            return bool(self._touch(tx.c, store, [digest]))

    def record_page_writes(self, content_id: str, store: str, stored: list[tuple[str, int, int]],
                           dropped: list[int], entries: list[tuple[int, str, int]]) -> set[str]:
        """One transaction for a batch of page writes to a content being written (see
        galley/blobservice/page_store.py): register the objects just written to `store` (digest,
        stored bytes, raw bytes), forget chunks `dropped`, record (or replace) chunks `entries`
        (index, digest, length). Returns the digests of `entries` the store holds, touched: one
        missing is a chunk that the writer skipped as held (see `held`) and that garbage collection
        deleted since; referenced now, it is safe to write it again and register it."""
        now = time.time()
        with self.sql.write() as tx:
            _insert_ignoring_duplicates(tx.c, store_chunks, [
                {"store": store, "digest": d, "stored_bytes": s, "raw_bytes": r, "last_seen": now}
                for d, s, r in stored])
            replaced = dropped + [idx for idx, _, _ in entries]
            if replaced:
                tx.c.execute(delete(content_chunks).where(_CC.content_id == content_id, _CC.idx.in_(replaced)))
            if entries:
                tx.c.execute(insert(content_chunks), [
                    {"content_id": content_id, "idx": idx, "digest": digest, "length": length}
                    for idx, digest, length in entries])
            return self._touch(tx.c, store, sorted({digest for _, digest, _ in entries}))

    def drop_chunks(self, content_id: str, indexes: list[int] | None = None) -> None:
        """Forget chunks of a content being written (all of them when `indexes` is None)."""
        with self.sql.write() as tx:
            query = delete(content_chunks).where(_CC.content_id == content_id)
            if indexes is not None:
                query = query.where(_CC.idx.in_(indexes))
            tx.c.execute(query)

    def finish_held_content(self, content_id: str, hold_key: str, virtual_size: int,
                            attach: tuple[str, int]) -> None:
        """In one transaction: a held content gets its final size, becomes ready, and replaces
        the disk's content that `attach` names."""
        with self.sql.write() as tx:
            tx.c.execute(delete(content_chunks).where(_CC.content_id == content_id,
                                                      _CC.idx * CHUNK_BYTES >= virtual_size))
            data_bytes = tx.c.execute(select(func.coalesce(func.sum(_CC.length), 0))
                                      .where(_CC.content_id == content_id)).scalar_one()
            tx.c.execute(update(contents).where(_C.id == content_id)
                         .values(state=READY, data_bytes=data_bytes, virtual_size=virtual_size))
            tx.c.execute(delete(disk_contents).where(_DC.resource_key == hold_key))
            self._attach(tx.c, attach, content_id)

    def release_held_content(self, hold_key: str) -> None:
        """Drop what a hold keeps (a session that expired or was discarded)."""
        with self.sql.write() as tx:
            for content_id in tx.c.execute(select(_DC.content_id).where(_DC.resource_key == hold_key)).scalars().all():
                self._discard(tx.c, content_id)
            tx.c.execute(delete(disk_contents).where(_DC.resource_key == hold_key))

    def content(self, content_id: str) -> dict | None:
        with self.sql.read() as tx:
            row = tx.c.execute(select(contents).where(_C.id == content_id)).first()
        return dict(row._mapping) if row else None

    def manifest(self, content_id: str) -> dict[int, tuple[str, int]]:
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_CC.idx, _CC.digest, _CC.length).where(_CC.content_id == content_id))
            return {row.idx: (row.digest, row.length) for row in rows}

    def copy_content(self, content_id: str, store: str, attach: tuple[str, int]) -> str:
        """A new content with the same chunks, attached to (resource key, lun): chunks never
        change, so sharing them makes this a full, independent copy."""
        new_id = str(uuid.uuid4())
        with self.sql.write() as tx:
            source = tx.c.execute(select(contents).where(_C.id == content_id)).first()
            if source is None or source.state != READY:
                raise LookupError(f"content {content_id} is not ready")
            tx.c.execute(insert(contents).values(id=new_id, virtual_size=source.virtual_size,
                                                 chunk_size=source.chunk_size, state=READY,
                                                 data_bytes=source.data_bytes, created_at=time.time()))
            tx.c.execute(insert(content_chunks).from_select(
                ["content_id", "idx", "digest", "length"],
                select(cast(literal(new_id), String(36)), _CC.idx, _CC.digest, _CC.length)
                .where(_CC.content_id == content_id)))
            tx.c.execute(insert(content_placements).values(content_id=new_id, store=store))
            stored = tx.c.execute(select(_P.store).where(_P.content_id == content_id)).scalars().all()
            if store not in stored:
                raise LookupError(f"content {content_id} is not placed in {store}")
            self._attach(tx.c, attach, new_id)
        return new_id

    def place(self, content_id: str, store: str) -> None:
        with self.sql.write() as tx:
            _insert_ignoring_duplicates(tx.c, content_placements, [{"content_id": content_id, "store": store}])

    def placements(self, content_id: str) -> list[str]:
        with self.sql.read() as tx:
            return list(tx.c.execute(select(_P.store).where(_P.content_id == content_id)
                                     .order_by(_P.store)).scalars())

    def resize(self, content_id: str, virtual_size: int) -> None:
        with self.sql.write() as tx:
            tx.c.execute(update(contents).where(_C.id == content_id).values(virtual_size=virtual_size))

    def unplace(self, content_id: str, store: str) -> None:
        with self.sql.write() as tx:
            tx.c.execute(delete(content_placements).where(_P.content_id == content_id, _P.store == store))

    def stores_holding(self, digest: str) -> list[str]:
        with self.sql.read() as tx:
            return list(tx.c.execute(select(_SC.store).where(_SC.digest == digest)).scalars())

    # ---- which resource holds which content ------------------------------------------------------
    def _attach(self, connection, attach: tuple[str, int], content_id: str) -> None:
        """Point a resource's disk at a content; a replaced content is dropped (GC frees its chunks)."""
        resource_key, lun = attach
        old = connection.execute(select(_DC.content_id).where(_DC.resource_key == resource_key,
                                                             _DC.lun == lun)).scalar()
        if old is None:
            connection.execute(insert(disk_contents).values(resource_key=resource_key, lun=lun,
                                                            content_id=content_id))
        else:
            connection.execute(update(disk_contents).where(_DC.resource_key == resource_key, _DC.lun == lun)
                               .values(content_id=content_id))
            self._discard(connection, old)

    def disk_contents(self, resource_key: str) -> dict[int, str]:
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_DC.lun, _DC.content_id).where(_DC.resource_key == resource_key))
            return {row.lun: row.content_id for row in rows}

    def contents_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """(resource key, content id) of the OS disks whose keys start with prefix (blobs)."""
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_DC.resource_key, _DC.content_id).where(
                _DC.resource_key.startswith(prefix, autoescape=True), _DC.lun == -1).order_by(_DC.resource_key))
            return [(row.resource_key, row.content_id) for row in rows]

    def drop_prefix(self, prefix: str) -> None:
        for key, _ in self.contents_with_prefix(prefix):
            self.drop_resource(key)

    def drop_resource(self, resource_key: str) -> None:
        with self.sql.write() as tx:
            for content_id in tx.c.execute(select(_DC.content_id).where(_DC.resource_key == resource_key)).scalars().all():
                self._discard(tx.c, content_id)
            tx.c.execute(delete(disk_contents).where(_DC.resource_key == resource_key))
            tx.c.execute(delete(replicas).where(_RP.version_key == resource_key))

    # ---- replicas ---------------------------------------------------------------------------------
    def save_replica(self, version_key: str, region: str, slot: int, store: str, state: str,
                     bytes_done: int, bytes_total: int, details: str = "") -> None:
        with self.sql.write() as tx:
            values = {"store": store, "state": state, "bytes_done": bytes_done,
                      "bytes_total": bytes_total, "details": details}
            changed = tx.c.execute(update(replicas).where(
                _RP.version_key == version_key, _RP.region == region, _RP.slot == slot).values(**values))
            if changed.rowcount == 0:
                tx.c.execute(insert(replicas).values(version_key=version_key, region=region, slot=slot, **values))

    def replicas_of(self, version_key: str) -> list[dict]:
        with self.sql.read() as tx:
            rows = tx.c.execute(select(replicas).where(_RP.version_key == version_key)
                                .order_by(_RP.region, _RP.slot))
            return [dict(r._mapping) for r in rows]

    def drop_replica(self, version_key: str, region: str, slot: int) -> None:
        with self.sql.write() as tx:
            tx.c.execute(delete(replicas).where(_RP.version_key == version_key, _RP.region == region,
                                                _RP.slot == slot))

    def record_transfer(self, subscription_id: str, resource_key: str, from_region: str,
                        to_region: str, moved: int) -> None:
        if moved <= 0:
            return
        with self.sql.write() as tx:
            tx.c.execute(insert(transfers).values(subscription_id=subscription_id, resource_key=resource_key,
                                                  from_region=from_region, to_region=to_region,
                                                  bytes=moved, at=time.time()))

    # ---- accounting -------------------------------------------------------------------------------------
    def occupied(self, resource_keys: list[str]) -> dict[str, tuple[int, int]]:
        """resource key → (occupied bytes: non-zero chunks, provisioned bytes) over all its disks."""
        if not resource_keys:
            return {}
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_DC.resource_key, func.sum(_C.data_bytes), func.sum(_C.virtual_size))
                                .join(contents, _C.id == _DC.content_id)
                                .where(_DC.resource_key.in_(resource_keys)).group_by(_DC.resource_key))
            return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}

    def completed_replicas(self, resource_keys: list[str]) -> dict[str, dict[str, int]]:
        """resource key → region → number of completed replicas."""
        if not resource_keys:
            return {}
        result: dict[str, dict[str, int]] = {}
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_RP.version_key, _RP.region, func.count()).where(
                _RP.version_key.in_(resource_keys), _RP.state == "Completed").group_by(_RP.version_key, _RP.region))
            for key, region, count in rows:
                result.setdefault(key, {})[region] = int(count)
        return result

    def physical_by_store(self) -> dict[str, tuple[int, int]]:
        """store → (bytes stored after compression, bytes of the chunks' data), deduplicated."""
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_SC.store, func.sum(_SC.stored_bytes), func.sum(_SC.raw_bytes))
                                .group_by(_SC.store))
            return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}

    def egress(self, subscription_id: str) -> list[dict]:
        t = transfers.c
        with self.sql.read() as tx:
            rows = tx.c.execute(select(t.from_region, t.to_region, func.sum(t.bytes))
                                .where(t.subscription_id == subscription_id.lower())
                                .group_by(t.from_region, t.to_region).order_by(t.from_region, t.to_region))
            return [{"from": a, "to": b, "bytes": int(n)} for a, b, n in rows]

    # ---- garbage collection and verification --------------------------------------------------------
    def stale_writing_contents(self, older_than: float) -> list[str]:
        """Contents left half-written by a crashed ingest and never attached to a resource."""
        with self.sql.read() as tx:
            attached = select(_DC.content_id)
            return list(tx.c.execute(select(_C.id).where(_C.state == WRITING, _C.created_at < older_than,
                                                         _C.id.not_in(attached))).scalars())

    def live_writer_starts(self, now: float, upload_lease_seconds: float) -> list[float]:
        """When each writer that still holds a lease began, at the latest (epoch seconds): a
        claimed operation (its start_time, before its claim) and a receiving upload (its lease's
        last renewal, when it also kept its content from looking stale; see ContentWriter.keep_alive)."""
        o, u = operations.c, upload_leases.c
        with self.sql.read() as tx:
            started = tx.c.execute(select(o.start_time).where(o.status == IN_PROGRESS, o.lease_until > now)).scalars()
            renewed = tx.c.execute(select(u.until).where(u.until > now)).scalars()
            return ([datetime.fromisoformat(text).timestamp() for text in started]
                    + [until - upload_lease_seconds for until in renewed])

    def in_place_writers(self) -> bool:
        """Whether some content is written in place (held by a disk access session or a page blob:
        attached while still being written), by writers no lease names."""
        with self.sql.read() as tx:
            return tx.c.execute(select(exists().where(_DC.content_id == _C.id, _C.state == WRITING))).scalar()

    def orphan_contents(self) -> list[str]:
        """Ready contents no resource points at (replaced or deleted disks)."""
        with self.sql.read() as tx:
            return list(tx.c.execute(select(_C.id).where(
                _C.state == READY, _C.id.not_in(select(_DC.content_id)))).scalars())

    def garbage_candidates(self, cutoff: float, limit: int = 10_000) -> list[tuple[str, str]]:
        with self.sql.read() as tx:
            rows = tx.c.execute(select(_SC.store, _SC.digest).where(
                _SC.last_seen < cutoff, ~_referenced_in_store()).limit(limit))
            return [(row.store, row.digest) for row in rows]

    def delete_if_unreferenced(self, store: str, digest: str, cutoff: float, delete_object) -> bool:
        """Delete the object, then its row, only if still garbage; safe to stop at any point.

        First the row is doomed (committed): from then on a writer takes it for absent and writes
        the object again (see _touch). Then, in one transaction, the row goes if it is still
        doomed and the object is deleted before that commits: a collector killed in between
        leaves a doomed row (no writer relies on its object) that the next collection deletes."""
        with self.sql.write() as tx:
            doomed = tx.c.execute(update(store_chunks).where(
                _SC.store == store, _SC.digest == digest, _SC.last_seen < cutoff, ~_referenced_in_store())
                .values(last_seen=DOOMED))
            if doomed.rowcount != 1:
                return False
        with self.sql.write() as tx:
            gone = tx.c.execute(delete(store_chunks).where(
                _SC.store == store, _SC.digest == digest, _SC.last_seen == DOOMED, ~_referenced_in_store()))
            if gone.rowcount != 1:
                return False
            delete_object()
            return True

    def store_ids(self) -> list[str]:
        """Every store that holds chunks or has contents placed in it."""
        with self.sql.read() as tx:
            held = set(tx.c.execute(select(_SC.store).distinct()).scalars())
            placed = set(tx.c.execute(select(_P.store).distinct()).scalars())
        return sorted(held | placed)

    def store_rows(self, store: str | None = None, doomed: bool = True) -> list[tuple[str, str]]:
        """(store, digest) of the chunk rows; `doomed`: also those garbage collection is deleting."""
        return list(self.iter_store_rows(store, doomed))

    def iter_store_rows(self, store: str | None = None, doomed: bool = True,
                        page: int = 5000) -> Iterator[tuple[str, str]]:
        """store_rows, read `page` rows at a time in (store, digest) order: a pass over millions
        of chunks holds one page in memory, and no read transaction stays open between pages."""
        after: tuple[str, str] | None = None
        while True:
            with self.sql.read() as tx:
                query = select(_SC.store, _SC.digest)
                if not doomed:
                    query = query.where(_SC.last_seen != DOOMED)
                if store is not None:
                    query = query.where(_SC.store == store)
                if after is not None:
                    query = query.where((_SC.store > after[0]) | ((_SC.store == after[0]) & (_SC.digest > after[1])))
                rows = [(row.store, row.digest) for row in
                        tx.c.execute(query.order_by(_SC.store, _SC.digest).limit(page))]
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]

    def has_chunk_row(self, store: str, digest: str) -> bool:
        """Whether `store` records `digest` (doomed or not)."""
        with self.sql.read() as tx:
            return tx.c.execute(select(exists().where(_SC.store == store, _SC.digest == digest))).scalar()

    def forget_chunk(self, store: str, digest: str) -> None:
        with self.sql.write() as tx:
            tx.c.execute(delete(store_chunks).where(_SC.store == store, _SC.digest == digest))
