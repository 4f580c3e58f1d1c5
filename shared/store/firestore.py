"""FirestoreStateStore: the Google Cloud backend.

``google.cloud.firestore`` costs ~200 ms to import, so nothing from ``google`` is imported at
module import: the client (and the library) are loaded on the first operation.

Layout: collection ``prefix + collection``, document id :func:`encode_document_id` of the key,
the caller's fields at the top level plus, for documents with an expiry, ``_expires_at`` (epoch
seconds, what the code checks) and ``expire_at`` (a timestamp for Firestore's TTL policy, which
only deletes "typically within 24 hours", hence the check in code).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from shared.errors import StoreError
from shared.store.base import EXPIRES_FIELD, TTL_FIELD, ManyStep, StateStore, Step, StoredRecord

if TYPE_CHECKING:  # only for type hints: importing these costs cold-start time
    from google.api_core.retry import Retry
    from google.cloud.firestore import Client, DocumentReference, DocumentSnapshot

__all__ = ["DEFAULT_TIMEOUT", "MAX_ATTEMPTS", "FirestoreStateStore", "encode_document_id"]

DEFAULT_TIMEOUT = 5.0  # seconds per operation (retries included), well under a webhook's 15 s
# The emulator makes a contended transaction wait ~2 s for a lock before aborting it, and
# production aborts contended transactions too: retry generously rather than fail the caller.
MAX_ATTEMPTS = 50

_MAX_ID_BYTES = 1500  # Firestore's limit on a document id
_HASHED_PREFIX_CHARS = 1000
_SAFE_CHARS = ":+@=,;!$&'()*~"  # kept readable; '/' and '%' are always encoded
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{0,100}")
_PING_COLLECTION = "_ping"
# Transactions on one document from threads of one process queue on an in-process lock rather
# than on Firestore's document locks: a lock conflict costs a server-side wait and an abort
# (~2 s each on the emulator), and hot documents such as per-country rate limits are common.
_KEY_LOCK_STRIPES = 64

_log = logging.getLogger(__name__)


def encode_document_id(key: str) -> str:
    """A valid Firestore document id for any non-empty key, distinct for distinct keys.

    Percent-encoding (so no '/', and '%' always starts an escape); '.', '..' and ids matching
    ``__.*__`` get their first character escaped; an id over 1500 bytes becomes a readable
    prefix plus ``%~`` and a SHA-256 of the key (an unhashed id never contains ``%~``).
    """
    doc_id = urllib.parse.quote(key, safe=_SAFE_CHARS)
    if doc_id in (".", "..") or (len(doc_id) >= 4 and doc_id.startswith("__") and doc_id.endswith("__")):
        doc_id = "%" + format(ord(doc_id[0]), "02X") + doc_id[1:]
    if len(doc_id) > _MAX_ID_BYTES:  # ASCII after quoting: characters == bytes
        head = doc_id[:_HASHED_PREFIX_CHARS]
        head = re.sub(r"%[0-9A-F]?$", "", head)  # do not cut an escape in half
        doc_id = head + "%~" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return doc_id


class FirestoreStateStore(StateStore):
    """StateStore on Cloud Firestore (or its emulator when FIRESTORE_EMULATOR_HOST is set)."""

    name = "firestore"

    def __init__(
        self,
        client: Client | None = None,
        *,
        project: str | None = None,
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__(clock=clock)
        if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
            raise ValueError("prefix must be at most 100 characters of A-Z, a-z, 0-9, '_' or '-'")
        self.project = project
        self.prefix = prefix
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._client = client
        self._owns_client = client is None
        self._read_retry: Retry | None = None
        self._write_retry: Retry | None = None
        self._key_locks = [threading.RLock() for _ in range(_KEY_LOCK_STRIPES)]
        self._client_lock = threading.Lock()

    # ---- client ---------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The Firestore client, built (and the library imported) on first use."""
        if self._client is None:
            with self._client_lock, self._converted("connecting"):
                if self._client is None:  # another thread may have built it meanwhile
                    from google.cloud import firestore

                    client = firestore.Client(project=self.project)
                    _bound_transaction_rpcs(client, self._retries()[1], self.timeout)
                    self._client = client
        return self._client

    def _retries(self) -> tuple[Retry, Retry]:
        if self._read_retry is None or self._write_retry is None:
            from google.api_core import exceptions as gexc
            from google.api_core.retry import Retry, if_exception_type

            # The library's defaults retry for 60-300 s: far past any webhook deadline.
            self._read_retry = Retry(
                initial=0.05,
                maximum=1.0,
                multiplier=2.0,
                timeout=self.timeout,
                predicate=if_exception_type(
                    gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError
                ),
            )
            # Writes retry only on errors that mean the request most likely never landed (not on
            # deadlines): a create whose reply was lost, retried, would report our own write as
            # a conflict.
            self._write_retry = Retry(
                initial=0.05,
                maximum=1.0,
                multiplier=2.0,
                timeout=self.timeout,
                predicate=if_exception_type(gexc.ServiceUnavailable, gexc.ResourceExhausted),
            )
        return self._read_retry, self._write_retry

    def _key_lock(self, collection: str, key: str) -> threading.RLock:
        return self._key_locks[hash((collection, key)) % _KEY_LOCK_STRIPES]

    def _ref(self, collection: str, key: str) -> DocumentReference:
        return self.client.collection(self.prefix + collection).document(encode_document_id(key))

    @contextlib.contextmanager
    def _converted(self, action: str) -> Iterator[None]:
        """Turn Google client errors into StoreError; everything else passes through untouched."""
        try:
            yield
        except _StepFailed:
            raise
        except ValueError as exc:
            # @transactional reports "exhausted max_attempts" as a bare ValueError chained from
            # Aborted, and a failed begin as "cannot be rolled back" with the RPC error as its
            # context. A ValueError not caused by the driver is a programming error and stays one.
            cause = _driver_cause(exc)
            if cause is None:
                raise
            raise StoreError(f"Firestore {action} failed: {type(cause).__name__}") from cause
        except _driver_errors() as exc:
            # The driver's message may name the document (a key can be a phone number): keep it
            # in the chained exception for the logs, out of the message that reaches responses.
            raise StoreError(f"Firestore {action} failed: {type(exc).__name__}") from exc

    # ---- primitives -------------------------------------------------------

    def _insert(self, collection: str, key: str, record: StoredRecord, now: float) -> bool:
        from google.api_core.exceptions import Conflict

        _, write_retry = self._retries()
        with self._converted("create"):
            ref = self._ref(collection, key)
            document = _to_firestore(record)
            try:
                ref.create(document, retry=write_retry, timeout=self.timeout)
                return True
            except Conflict:
                pass
        # Slow path: a document exists. Replace it only if it has expired, re-checking inside a
        # transaction so two racing creators cannot both win.
        written: list[bool] = []

        def replace_expired(records: list[StoredRecord | None]) -> list[StoredRecord | None]:
            existing = records[0]
            written.append(existing is None or existing.is_expired(now))
            return [record if written[-1] else None]

        self._read_write([(collection, key)], replace_expired)
        return written[-1]

    def _fetch(self, collection: str, key: str) -> StoredRecord | None:
        read_retry, _ = self._retries()
        with self._converted("read"):
            snapshot = self._ref(collection, key).get(retry=read_retry, timeout=self.timeout)
            return _from_snapshot(snapshot)

    def _transact(self, collection: str, key: str, step: Step) -> StoredRecord | None:
        outcome: list[StoredRecord | None] = []

        def step_one(records: list[StoredRecord | None]) -> list[StoredRecord | None]:
            new = step(records[0])
            outcome.append(records[0] if new is None else new)
            return [new]

        self._read_write([(collection, key)], step_one)
        return outcome[-1]

    def _transact_many(self, refs: list[tuple[str, str]], step: ManyStep) -> None:
        self._read_write(refs, step)

    def _read_write(self, refs: list[tuple[str, str]], step: ManyStep) -> None:
        """A read-write transaction in two RPCs: the read of every key BEGINS the transaction
        (``new_transaction`` on BatchGetDocuments), then one Commit. The library's
        ``@transactional`` sends a BeginTransaction RPC first: three RPCs per update.

        ``step`` may run again when Firestore aborts the transaction (contention); the retry
        names the aborted transaction (``retry_transaction``) so it keeps its place in line.
        Threads of this process take the keys' lock stripes first, in stripe order.
        """
        read_retry, write_retry = self._retries()
        failure: BaseException
        try:
            with contextlib.ExitStack() as locks, self._converted("transaction"):
                from google.api_core.exceptions import Aborted
                from google.cloud.firestore_v1 import _helpers

                client = self.client
                api, database, metadata = client._firestore_api, client._database_string, client._rpc_metadata
                paths = [self._ref(collection, key)._document_path for collection, key in refs]
                for stripe in sorted({hash(ref) % _KEY_LOCK_STRIPES for ref in refs}):
                    locks.enter_context(self._key_locks[stripe])
                retry_id: bytes | None = None
                for _ in range(self.max_attempts):
                    options = {"read_write": {"retry_transaction": retry_id} if retry_id else {}}
                    transaction: bytes | None = None
                    try:
                        found: dict[str, StoredRecord | None] = {}
                        responses = api.batch_get_documents(
                            request={"database": database, "documents": paths, "new_transaction": options},
                            metadata=metadata,
                            retry=read_retry,
                            timeout=self.timeout,
                        )
                        for response in responses:
                            if response.transaction:
                                transaction = response.transaction
                            if response.found.name:
                                found[response.found.name] = _from_data(_helpers.decode_dict(response.found.fields, client))
                        if transaction is None:  # pragma: no cover - the API always answers with one
                            raise StoreError("Firestore began no transaction")
                        try:
                            writes = step([found.get(path) for path in paths])
                        except BaseException as exc:
                            raise _StepFailed(exc) from None
                        write_pbs = [
                            pb
                            for path, new in zip(paths, writes)
                            if new is not None
                            for pb in _helpers.pbs_for_set_no_merge(path, _to_firestore(new))
                        ]
                        api.commit(
                            request={"database": database, "writes": write_pbs, "transaction": transaction},
                            metadata=metadata,
                            retry=write_retry,
                            timeout=self.timeout,
                        )
                        return
                    except Aborted:
                        retry_id = transaction or retry_id  # contention: run the step again
                    except BaseException:
                        if transaction is not None:
                            _rollback_quietly(api, database, metadata, transaction, write_retry, self.timeout)
                        raise
                raise StoreError("Firestore transaction failed: too much contention on one document")
        except _StepFailed as failed:
            failure = failed.original
        raise failure  # outside the except block: the caller's exception, untouched

    def _delete(self, collection: str, key: str) -> None:
        _, write_retry = self._retries()
        with self._converted("delete"):
            self._ref(collection, key).delete(retry=write_retry, timeout=self.timeout)

    def _query(
        self,
        collection: str,
        where: dict[str, Any],
        order_by: str | None,
        descending: bool,
        limit: int,
        now: float,
    ) -> Iterator[StoredRecord]:
        # Expired documents are filtered here in code: a range filter on the expiry would need
        # composite indexes and would drop documents that never expire. So page through
        # results until the caller has `limit` live ones; usually the first page suffices.
        read_retry, _ = self._retries()
        with self._converted("query"):
            from google.cloud import firestore
            from google.cloud.firestore_v1.base_query import FieldFilter
            from google.cloud.firestore_v1.field_path import FieldPath

            query: Any = self.client.collection(self.prefix + collection)
            for field_name, value in where.items():
                query = query.where(filter=FieldFilter(FieldPath(field_name).to_api_repr(), "==", value))
            if order_by is not None:
                direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
                query = query.order_by(FieldPath(order_by).to_api_repr(), direction=direction)
        last: DocumentSnapshot[Any] | None = None
        while True:
            with self._converted("query"):
                page = query.start_after(last) if last is not None else query
                snapshots = list(page.limit(limit).stream(retry=read_retry, timeout=self.timeout))
            for snapshot in snapshots:
                record = _from_snapshot(snapshot)
                if record is not None:
                    yield record
            if len(snapshots) < limit:
                return
            last = snapshots[-1]

    def _ping(self) -> None:
        read_retry, _ = self._retries()
        with self._converted("ping"):
            self.client.collection(self.prefix + _PING_COLLECTION).document("ping").get(
                retry=read_retry, timeout=self.timeout
            )

    def _close(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            with self._converted("close"):
                client.close()  # type: ignore[no-untyped-call]


class _StepFailed(Exception):
    """Carries an exception raised by update()'s function through the transaction machinery."""

    def __init__(self, original: BaseException) -> None:
        super().__init__("update function failed")
        self.original = original


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The exception types a Firestore call can raise (imported only once an error happens)."""
    import grpc  # type: ignore[import-untyped]
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    # OSError: sockets, and the client's "project could not be determined" (an EnvironmentError).
    return (gexc.GoogleAPIError, auth_exc.GoogleAuthError, grpc.RpcError, OSError)


def _driver_cause(exc: BaseException) -> BaseException | None:
    """The first driver exception in ``exc``'s chain of causes and contexts, if any."""
    errors = _driver_errors()
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, _StepFailed):
            return None  # the caller's own failure: not ours to convert
        if isinstance(current, errors):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _bound_transaction_rpcs(client: Client, retry: Retry, timeout: float) -> None:
    """Give the transaction RPCs (begin, commit, rollback) our retry budget by default.

    The store's own transactions (:meth:`FirestoreStateStore._read_write`) pass both arguments;
    this is the safety net for library helpers (``@transactional``), which call them without retry/timeout arguments, so the library defaults
    apply: retrying an unreachable server for 60 s. The GAPIC methods accept ``retry`` and
    ``timeout``; bind ours on the client's (cached) GAPIC object. Only done for clients this
    store built; if the library's internals ever move, the defaults simply stay.
    """
    try:
        api = client._firestore_api
        for method in ("begin_transaction", "commit", "rollback"):
            setattr(api, method, functools.partial(getattr(api, method), retry=retry, timeout=timeout))
    except AttributeError:  # pragma: no cover - depends on the library version
        _log.warning("could not bound Firestore transaction RPC timeouts; library defaults apply")


def _to_firestore(record: StoredRecord) -> dict[str, Any]:
    document = dict(record.data)
    if record.expires_at is not None:
        document[EXPIRES_FIELD] = record.expires_at
        document[TTL_FIELD] = datetime.datetime.fromtimestamp(record.expires_at, tz=datetime.timezone.utc)
    return document


def _rollback_quietly(api: Any, database: str, metadata: Any, transaction: bytes, retry: Retry, timeout: float) -> None:
    """Release a transaction's locks after a failure; the failure is what the caller must see."""
    try:
        api.rollback(request={"database": database, "transaction": transaction}, metadata=metadata, retry=retry,
                     timeout=timeout)
    except Exception:  # noqa: BLE001 - the server drops the transaction on its own anyway
        _log.warning("could not roll back a Firestore transaction", exc_info=True)


def _from_snapshot(snapshot: DocumentSnapshot[Any]) -> StoredRecord | None:
    if not snapshot.exists:
        return None
    return _from_data(snapshot.to_dict() or {})


def _from_data(data: dict[str, Any]) -> StoredRecord:
    expires_at = data.pop(EXPIRES_FIELD, None)
    data.pop(TTL_FIELD, None)
    return StoredRecord(data, float(expires_at) if expires_at is not None else None)
