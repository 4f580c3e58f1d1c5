"""The state store contract and the rules every backend shares.

Follows the shape of AWS Powertools' ``BasePersistenceLayer``: the public methods on
:class:`StateStore` own the rules (expiry, key and document checks, the rate limiter),
and each backend implements a handful of small private primitives:

``_insert``    atomic create-if-absent-or-expired
``_fetch``     read one stored record (expired or not)
``_transact``  read-modify-write one record inside a transaction
``_delete``    delete one record
``_query``     yield records of a collection in order (may include expired ones)
``_ping``      one cheap round trip
``_close``     release connections

Backends are the only code that catches their driver's exceptions; they convert them into
:class:`~shared.errors.StoreError` (or :class:`~shared.errors.RecordExistsError`), chained with
``raise ... from exc``.
"""

from __future__ import annotations

import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import RecordExistsError

__all__ = [
    "Charge",
    "Update",
    "EXPIRES_FIELD",
    "NO_EXPIRY",
    "RATELIMIT_COLLECTION",
    "RESERVED_FIELDS",
    "TTL_FIELD",
    "RateDecision",
    "RateHit",
    "StateStore",
    "StoredRecord",
    "Step",
]

# Reserved top-level field names. EXPIRES_FIELD holds the expiry (epoch seconds) where a
# backend keeps it inside the document; TTL_FIELD is the Firestore timestamp its TTL policy
# deletes on (deploy.sh creates the policy on this exact name). Both are rejected in caller
# documents on EVERY backend, so code that works on SQLite also works on Firestore.
EXPIRES_FIELD = "_expires_at"
TTL_FIELD = "expire_at"
RESERVED_FIELDS = frozenset({EXPIRES_FIELD, TTL_FIELD})

RATELIMIT_COLLECTION = "ratelimits"

# ``ttl=NO_EXPIRY`` (update, update_many, Charge, create): the document never expires, and an
# update removes the expiry it had (ttl=None keeps it).
NO_EXPIRY = math.inf

# Collection names are chosen by developers, not callers: keep them to a charset every
# backend accepts verbatim (Firestore collection ids cannot contain '/' or match __.*__).
_COLLECTION_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_RESERVED_NAME_RE = re.compile(r"__.*__", re.DOTALL)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # Firestore integers are int64


@dataclass(frozen=True)
class RateDecision:
    """The answer of :meth:`StateStore.hit`."""

    allowed: bool
    count: int  # hits in the window, including this one when allowed
    retry_after: float  # seconds until a hit would be allowed again (0 when allowed)


@dataclass(frozen=True)
class RateHit:
    """One counter for :meth:`StateStore.hit_many`: the arguments of one :meth:`StateStore.hit`."""

    bucket: str
    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class Charge:
    """A document changed with :meth:`StateStore.hit_many`'s counters once they all allowed the
    hit (a spend budget charged after the rate limits): ``fn`` as in :meth:`StateStore.update`
    (the new document, or None to leave it unchanged; it may raise to refuse), ``undo`` gives back
    what ``fn`` took (used only where the charges cannot share one transaction), ``ttl`` as in
    :meth:`StateStore.update`."""

    collection: str
    key: str
    fn: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    undo: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ttl: float | None = None


@dataclass(frozen=True)
class Update:
    """One read-modify-write of :meth:`StateStore.update_many`: the arguments of :meth:`StateStore.update`."""

    collection: str
    key: str
    fn: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ttl: float | None = None


@dataclass(frozen=True)
class StoredRecord:
    """A document as a backend stores it: caller data plus its expiry (epoch seconds or None)."""

    data: dict[str, Any]
    expires_at: float | None = None

    def is_expired(self, now: float) -> bool:
        """True once ``now`` has reached the expiry."""
        return self.expires_at is not None and self.expires_at <= now


# What _transact runs inside the transaction: given the stored record (None if absent,
# possibly expired), return the record to write, or None to write nothing.
Step = Callable[[StoredRecord | None], StoredRecord | None]
# What _transact_many runs: the stored records of several (collection, key) documents (in the
# order asked), and the records to write in the same order (None: leave that one unchanged).
ManyStep = Callable[[list[StoredRecord | None]], list[StoredRecord | None]]


class StateStore(ABC):
    """Documents are JSON-like dicts (str/int/float/bool/None/list/dict) keyed by (collection, key).

    Values follow Firestore's limits on every backend: integers are 64-bit, floats finite, a
    list cannot directly contain a list, field names are non-empty and never ``__like_this__``.

    Keys are arbitrary non-empty strings (may contain '/', ':', '+', spaces, unicode): backends
    encode them. A document may expire: ``ttl`` seconds from now; an expired document is treated
    as absent by every method (also before the backend physically deletes it) and can be created
    again. The top-level field names in :data:`RESERVED_FIELDS` are refused in documents.
    """

    name: str  # "sqlite", "firestore" or "postgres"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    # ---- public API: the rules live here -------------------------------

    def create(self, collection: str, key: str, data: Mapping[str, Any], *, ttl: float | None = None) -> None:
        """Atomic create-if-absent (the dedupe primitive).

        Raises RecordExistsError when a live document exists under (collection, key); an
        expired one is replaced.
        """
        _check_collection(collection)
        _check_key(key)
        document = _check_document(data)
        now = self._clock()
        record = StoredRecord(document, _expiry(now, ttl))
        if not self._insert(collection, key, record, now):
            # The key is left out on purpose: it may be a phone number and messages reach responses.
            raise RecordExistsError(f"a live record already exists in {collection!r}")

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The live document, or None when it is absent or expired."""
        _check_collection(collection)
        _check_key(key)
        record = self._fetch(collection, key)
        if record is None or record.is_expired(self._clock()):
            return None
        return _copy_document(record.data)

    def update(
        self,
        collection: str,
        key: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        ttl: float | None = None,
    ) -> dict[str, Any] | None:
        """Transactional read-modify-write.

        ``fn`` receives a copy of the live document (None if absent/expired) and returns the full
        new document to write, or None to write nothing. ``fn`` may run more than once
        (transaction retries), so it must be pure and must not call the store. An exception
        raised by ``fn`` aborts and
        propagates unchanged. ``ttl=None`` keeps the document's current expiry (none for a new
        document); a number sets a new expiry; :data:`NO_EXPIRY` removes it (a document parked
        with an expiry that becomes permanent). Returns the document as it is after the call
        (None if absent).
        """
        _check_collection(collection)
        _check_key(key)
        if ttl is not None:
            _check_ttl(ttl)

        def step(current: StoredRecord | None) -> StoredRecord | None:
            now = self._clock()
            live = current if current is not None and not current.is_expired(now) else None
            new = fn(_copy_document(live.data) if live is not None else None)
            if new is None:
                return None
            document = _check_document(new)
            expires_at = _expiry(now, ttl) if ttl is not None else (live.expires_at if live is not None else None)
            return StoredRecord(document, expires_at)

        after = self._transact(collection, key, step)
        if after is None or after.is_expired(self._clock()):
            return None
        return _copy_document(after.data)

    def delete(self, collection: str, key: str) -> None:
        """Remove the document; deleting an absent one is not an error."""
        _check_collection(collection)
        _check_key(key)
        self._delete(collection, key)

    def query(
        self,
        collection: str,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Equality filters on top-level fields, optional ordering on one top-level field.

        Expired documents are excluded. ``where`` values must be scalars (str, int, float, bool,
        None); numbers compare numerically (1 == 1.0) but never equal booleans. As in Firestore,
        ordering by a field leaves out documents that lack that field. Ties, and results without
        ``order_by``, come in a backend-defined key order: do not rely on it.
        """
        _check_collection(collection)
        filters = dict(where or {})
        for field_name, value in filters.items():
            _check_field_name(field_name)
            if value is not None and not isinstance(value, (str, bool, int, float)):
                raise TypeError(f"where[{field_name!r}] must be a str, int, float, bool or None")
            _check_value(value, field_name)  # the same number limits as stored values
        if order_by is not None:
            _check_field_name(order_by)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        now = self._clock()
        results: list[dict[str, Any]] = []
        records = self._query(collection, filters, order_by, descending, limit, now)
        try:
            for record in records:
                if record.is_expired(now):
                    continue
                results.append(_copy_document(record.data))
                if len(results) >= limit:
                    break
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # stop a paging generator early
        return results

    def update_many(self, updates: Sequence[Update]) -> list[dict[str, Any] | None]:
        """Several :meth:`update` calls of distinct documents, run in the order given; returns
        each document as it is after the call (as :meth:`update` does).

        What the caller may rely on is what one :meth:`update` per item gives: each is an atomic
        read-modify-write, the ``fn`` of an item runs after those of the items before it, and an
        exception stops at that item and propagates. Backends with a multi-document transaction
        (every built-in one) make them all in ONE transaction (one round trip's worth of
        transaction instead of one per document: then an exception writes none of them); the
        default makes one :meth:`update` per item.
        """
        updates = list(updates)
        for item in updates:
            if not isinstance(item, Update):
                raise TypeError("update_many takes Update items")
            _check_collection(item.collection)
            _check_key(item.key)
            if item.ttl is not None:
                _check_ttl(item.ttl)
        refs = [(item.collection, item.key) for item in updates]
        if len(set(refs)) != len(refs):
            raise ValueError("update_many was given the same document twice")
        if not self._has_transact_many():
            return [self.update(item.collection, item.key, item.fn, ttl=item.ttl) for item in updates]
        if not updates:
            return []
        outcome: list[list[StoredRecord | None]] = []

        def step(records: list[StoredRecord | None]) -> list[StoredRecord | None]:
            now = self._clock()
            writes: list[StoredRecord | None] = []
            after: list[StoredRecord | None] = []
            for item, record in zip(updates, records):
                live = record if record is not None and not record.is_expired(now) else None
                new = _written_record(item.fn, item.ttl, live, now)
                writes.append(new)
                after.append(new if new is not None else live)
            outcome.append(after)
            return writes

        self._transact_many(refs, step)
        return [None if record is None else _copy_document(record.data) for record in outcome[-1]]

    def hit(self, bucket: str, key: str, *, limit: int, window: float) -> RateDecision:
        """Sliding-window log rate limit on top of :meth:`update`.

        Keeps at most ``limit`` timestamps; a hit when ``limit`` hits are already inside the
        window is refused and NOT recorded, with ``retry_after`` = oldest + window - now.
        Stored in collection "ratelimits", key f"{bucket}:{key}", with ttl=window.
        """
        _check_rate_limit(limit, window)
        # fn may run several times; the outcome of the run that committed is the last one.
        outcome: list[RateDecision] = []

        def record_hit(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            new, decision = _rate_step(doc, self._clock(), limit, window)
            outcome.append(decision)
            return new

        self.update(RATELIMIT_COLLECTION, f"{bucket}:{key}", record_hit, ttl=window)
        return outcome[-1]

    def hit_many(self, hits: Sequence[RateHit], *, then: Sequence[Charge] = ()) -> list[RateDecision]:
        """Several counters at once: the same outcome as calling :meth:`hit` for each in order
        and stopping at the first refusal.

        Returns one decision per counter tried: all of them when every one allowed the hit,
        otherwise up to and including the first refusal (counters after it are neither read
        nor counted, counters before it keep their hit). Backends with a multi-document
        transaction (every built-in one) read and write all the counters in ONE transaction, so
        a verification start's four fraud counters cost one transaction instead of four.

        ``then``: documents to change (:class:`Charge`) when every counter allowed its hit, all
        or none: when one ``fn`` raises, no charge is written (the counters keep their hits, as
        they would with one call per step) and the exception propagates after the counters are
        stored. With a refused counter no charge is read or written. On the built-in backends
        the charges travel in the counters' one transaction; elsewhere each is an
        :meth:`update`, and the ones made before a refusal are given back with their ``undo``.
        """
        hits, then = list(hits), list(then)
        for hit in hits:
            if not isinstance(hit, RateHit):
                raise TypeError("hit_many takes RateHit items")
            _check_rate_limit(hit.limit, hit.window)
        keys = [f"{hit.bucket}:{hit.key}" for hit in hits]
        for key in keys:
            _check_key(key)
        for charge in then:
            if not isinstance(charge, Charge):
                raise TypeError("hit_many's then takes Charge items")
            _check_collection(charge.collection)
            _check_key(charge.key)
            if charge.ttl is not None:
                _check_ttl(charge.ttl)
        refs = [(RATELIMIT_COLLECTION, key) for key in keys] + [(c.collection, c.key) for c in then]
        if len(set(refs)) != len(refs):
            raise ValueError("hit_many was given the same counter or document twice")
        if not refs:
            return []
        if not self._has_transact_many():
            decisions: list[RateDecision] = []
            for hit in hits:
                decisions.append(self.hit(hit.bucket, hit.key, limit=hit.limit, window=hit.window))
                if not decisions[-1].allowed:
                    return decisions
            self._charge_one_by_one(then)
            return decisions
        outcome: list[tuple[list[RateDecision], BaseException | None]] = []

        def step(records: list[StoredRecord | None]) -> list[StoredRecord | None]:
            now = self._clock()
            decisions = []
            writes: list[StoredRecord | None] = [None] * len(records)
            lives = [record if record is not None and not record.is_expired(now) else None for record in records]
            for index, (hit, live) in enumerate(zip(hits, lives)):
                new, decision = _rate_step(_copy_document(live.data) if live else None, now, hit.limit, hit.window)
                decisions.append(decision)
                if new is None:
                    outcome.append((decisions, None))
                    return writes
                writes[index] = StoredRecord(_check_document(new), now + hit.window)
            try:
                charged = [
                    _written_record(charge.fn, charge.ttl, live, now) for charge, live in zip(then, lives[len(hits):])
                ]
            except Exception as exc:  # a refused charge: the counters are written, no charge is
                outcome.append((decisions, exc))
                return writes
            outcome.append((decisions, None))
            return writes[: len(hits)] + charged

        self._transact_many(refs, step)
        decisions, refused = outcome[-1]
        if refused is not None:
            raise refused
        return decisions

    def _charge_one_by_one(self, then: list[Charge]) -> None:
        """hit_many's charges without a shared transaction: one update each, the ones made given
        back (``undo``) when a later one refuses."""
        made: list[Charge] = []
        try:
            for charge in then:
                self.update(charge.collection, charge.key, charge.fn, ttl=charge.ttl)
                made.append(charge)
        except Exception:
            for charge in reversed(made):
                self.update(charge.collection, charge.key, charge.undo)
            raise

    def ping(self) -> None:
        """Cheap round trip; raises StoreError when the store is unreachable."""
        self._ping()

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""
        self._close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- backend primitives ---------------------------------------------

    @abstractmethod
    def _insert(self, collection: str, key: str, record: StoredRecord, now: float) -> bool:
        """Atomically store ``record`` unless a live (unexpired at ``now``) record exists.

        Returns False, writing nothing, when a live record exists; an expired one is replaced.
        """

    @abstractmethod
    def _fetch(self, collection: str, key: str) -> StoredRecord | None:
        """The stored record, expired or not, or None."""

    @abstractmethod
    def _transact(self, collection: str, key: str, step: Step) -> StoredRecord | None:
        """Run ``step`` on the stored record inside a transaction and write what it returns.

        ``step`` may run several times. Its exceptions must propagate unchanged (and abort the
        transaction). Returns the stored record after the call: what ``step`` returned, or the
        unchanged record (possibly expired, possibly None) when it returned None.
        """

    def _has_transact_many(self) -> bool:
        """True when the backend overrides :meth:`_transact_many`."""
        return type(self)._transact_many is not StateStore._transact_many

    def _transact_many(self, refs: list[tuple[str, str]], step: ManyStep) -> None:
        """Optional: run ``step`` on the stored records of several distinct (collection, key)
        documents inside ONE transaction and write what it returns (None: that record unchanged).

        ``step`` may run several times; its exceptions propagate unchanged. A backend without
        it gets :meth:`hit_many`'s correct but slower default (one transaction per counter).
        """
        raise NotImplementedError

    @abstractmethod
    def _delete(self, collection: str, key: str) -> None:
        """Delete the record if present."""

    @abstractmethod
    def _query(
        self,
        collection: str,
        where: dict[str, Any],
        order_by: str | None,
        descending: bool,
        limit: int,
        now: float,
    ) -> Iterator[StoredRecord]:
        """Yield matching records in order.

        May yield expired records (the caller skips them) but must keep yielding until at least
        ``limit`` live ones were produced or none are left.
        """

    @abstractmethod
    def _ping(self) -> None:
        """One cheap round trip to the store."""

    @abstractmethod
    def _close(self) -> None:
        """Release connections."""


# ---- rules shared by every backend ----------------------------------------


def _check_collection(collection: str) -> None:
    if not isinstance(collection, str) or not _COLLECTION_RE.fullmatch(collection):
        raise ValueError("collection must be 1-100 characters of A-Z, a-z, 0-9, '_' or '-'")
    if _RESERVED_NAME_RE.fullmatch(collection):
        raise ValueError("collection names of the form __name__ are reserved")


def _check_key(key: str) -> None:
    if not isinstance(key, str):
        raise TypeError("key must be a str")
    if not key:
        raise ValueError("key must not be empty")


def _written_record(
    fn: Callable[[dict[str, Any] | None], dict[str, Any] | None], ttl: float | None, live: StoredRecord | None,
    now: float,
) -> StoredRecord | None:
    """The record ``fn`` writes over ``live`` (``update``'s rules for the document and its expiry), or None."""
    new = fn(_copy_document(live.data) if live is not None else None)
    if new is None:
        return None
    expires_at = _expiry(now, ttl) if ttl is not None else (live.expires_at if live is not None else None)
    return StoredRecord(_check_document(new), expires_at)


def _check_rate_limit(limit: int, window: float) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")
    _check_ttl(window)
    if window == NO_EXPIRY:
        raise ValueError("a rate-limit window must be a finite number of seconds")


def _rate_step(
    doc: dict[str, Any] | None, now: float, limit: int, window: float
) -> tuple[dict[str, Any] | None, RateDecision]:
    """The sliding-window log rule: the counter document to write (None: refused, write nothing)
    and the decision. Keeps at most ``limit`` timestamps inside the window."""
    stamps = sorted(float(t) for t in (doc or {}).get("hits", []) if isinstance(t, (int, float)) and t > now - window)
    if len(stamps) >= limit:
        # Allowed again once enough of the oldest hits have left the window.
        retry_after = max(0.0, stamps[len(stamps) - limit] + window - now)
        return None, RateDecision(False, len(stamps), retry_after)
    stamps.append(now)
    return {"hits": stamps}, RateDecision(True, len(stamps), 0.0)


def _check_ttl(ttl: float) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl) or ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds (or NO_EXPIRY)")


def _expiry(now: float, ttl: float | None) -> float | None:
    if ttl is None:
        return None
    _check_ttl(ttl)
    return None if ttl == NO_EXPIRY else now + ttl


def _check_field_name(name: str) -> None:
    # '"' cannot be quoted inside an SQLite JSON path; keep the contract identical on both backends.
    if not isinstance(name, str) or not name or '"' in name:
        raise ValueError("field names must be non-empty strings without '\"'")
    if name in RESERVED_FIELDS or _RESERVED_NAME_RE.fullmatch(name):
        raise ValueError(f"{name!r} is a reserved field name")


def _copy_document(value: Any) -> Any:
    """A deep copy of a stored document. Documents hold only JSON types (checked on every write),
    so dicts and lists are all there is to copy; ``copy.deepcopy``'s generality (memo, reducers)
    made it the largest single cost of a webhook in the profile (about 14% of its CPU). Scalars,
    most of any document, are taken as they are without a call each."""
    if type(value) is dict:
        return {name: _copy_document(item) if type(item) in _CONTAINERS else item for name, item in value.items()}
    if type(value) is list:
        return [_copy_document(item) if type(item) in _CONTAINERS else item for item in value]
    return value


_CONTAINERS = (dict, list)


def _check_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """A validated shallow copy of a caller document; raises TypeError/ValueError naming the field."""
    if not isinstance(data, Mapping):
        raise TypeError("a document must be a mapping")
    document = dict(data)
    for name in document:
        if not isinstance(name, str):
            raise TypeError("document field names must be str")
        if name in RESERVED_FIELDS:
            raise ValueError(f"{name!r} is a reserved field name")
    if not _plainly_valid(document):
        _check_value(document, "")  # finds what is wrong, and names where
    return document



def _plainly_valid(value: Any) -> bool:
    """True when ``value`` surely passes :func:`_check_value`; the fast path of every write, since
    building each nested value's path string only matters for the error message. Plain loops,
    and no call for a str, bool or None item: this runs over every field of every write."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return _INT64_MIN <= value <= _INT64_MAX
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        for item in value:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is list or not _plainly_valid(item):
                return False
        return True
    if kind is dict:
        for name, item in value.items():
            if type(name) is not str or not name or (len(name) > 3 and name[:2] == "__" == name[-2:]):
                return False
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if not _plainly_valid(item):
                return False
        return True
    return False  # subclasses and other types: the full check decides (and explains)


def _check_value(value: Any, path: str) -> None:
    # The path, never the value, goes into messages: values may be secrets.
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer out of the 64-bit range at {path or 'document'}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number at {path or 'document'}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, list):
                # Firestore cannot store an array directly inside an array (wrap it in a map).
                raise TypeError(f"an array directly inside an array at {path or 'document'}[{index}]")
            _check_value(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(f"map keys must be str at {path or 'document'}")
            if not name or _RESERVED_NAME_RE.fullmatch(name):
                # Firestore refuses empty field names and reserves __name__ forms.
                raise ValueError(f"empty or reserved (__name__) field name at {path or 'document'}")
            _check_value(item, f"{path}.{name}" if path else name)
        return
    raise TypeError(f"unsupported type {type(value).__name__} at {path or 'document'}")
