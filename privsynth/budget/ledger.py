"""The persistent privacy-budget ledger: hash-chained entries, per-dataset caps, in one SQLite
file (the default) or a PostgreSQL database a team shares (a ``postgresql://`` URL).

Every spend of privacy budget on a dataset is a ``reserve`` entry holding the typed privacy
events (never a float that could not be re-derived).  Whether the spend fits under the
dataset's cap is decided inside one write transaction that no other writer overlaps
(``BEGIN IMMEDIATE`` in SQLite, a locked ``SERIALIZABLE`` one in PostgreSQL), which re-reads
and re-verifies the whole chain and recomposes *all* stored events of the dataset with
:func:`~privsynth.budget.analysis.epsilon_spent_exact` -- so concurrent processes cannot
over-spend, and a crash either leaves a whole entry or none.  This decision is made here, once,
for both backends.

The parts: :mod:`~privsynth.budget.chain` (entries, hashing, verification),
:mod:`~privsynth.budget.backend` (the storage interface and the choice of backend),
:mod:`~privsynth.budget.store` (the SQLite file, locking, transactions),
:mod:`~privsynth.budget.pgstore` (PostgreSQL),
:mod:`~privsynth.budget.export` (JSONL exports), :mod:`~privsynth.budget.describe` (summaries)
and this module, the :class:`Ledger` of one dataset with its :class:`Reservation` objects.

>>> import tempfile, pathlib
>>> from privsynth.budget import Budget, Ledger, PureDP
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.db"
>>> with Ledger.open(path, dataset_id="adult", cap=Budget(1.0, 1e-9)) as led:
...     r = led.reserve(PureDP(0.25), purpose="histogram of age")
...     r.commit()
...     print(led.remaining())
(epsilon=0.75, delta=1e-09)
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from privsynth.budget.analysis import as_rational, epsilon_spent_exact, float_down, float_up
from privsynth.budget.backend import LedgerStore, open_store
from privsynth.budget.chain import (
    GENESIS_HASH,
    active_events,
    current_cap,
    plain_copy,
    reservation_states,
)
from privsynth.budget.describe import describe_summary, summarize
from privsynth.budget.events import (
    Budget,
    Charge,
    PrivacyEvent,
    as_events,
    event_summary,
    format_param,
)
from privsynth.budget.export import write_jsonl
from privsynth.errors import BudgetExceeded, ConfigError, LedgerCorrupt, LedgerError

T = TypeVar("T")

logger = logging.getLogger("privsynth.ledger")
logger.addHandler(logging.NullHandler())  # silent in library mode unless logging is configured


def _check_cap(cap: Any) -> Budget:
    if not isinstance(cap, Budget):
        raise ConfigError(f"cap must be a privsynth Budget(epsilon, delta), got {cap!r}")
    if cap.epsilon <= 0:
        raise ConfigError(f"cap epsilon ({cap.epsilon!r}) must be > 0")
    return cap


def _check_text(name: str, value: Any, *, limit: int = 1000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} ({value!r}) must be a non-empty string")
    if len(value) > limit:
        raise ConfigError(f"{name} is {len(value)} characters long; at most {limit} allowed")
    return value


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return plain_copy(dict(metadata))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"metadata must be JSON-serialisable with string keys and finite numbers: {exc}"
        ) from None


class Reservation:
    """A reserved privacy spend.  It counts as spent from the moment it exists; ``commit()``
    records that the release happened, ``cancel(reason)`` refunds it (only if not committed)."""

    def __init__(
        self, ledger: Ledger, id: str, events: tuple[PrivacyEvent, ...], purpose: str, seq: int
    ) -> None:
        self._ledger = ledger
        self.id = id
        self.events = events
        self.purpose = purpose
        self.seq = seq

    def commit(self, metadata: Mapping[str, Any] | None = None) -> None:
        """Record that the release was made (e.g. with the digest of what was released)."""
        self._ledger._close_reservation(self, "commit", _check_metadata(metadata))

    def cancel(self, reason: str) -> None:
        """Refund the reservation; only allowed if it was not committed."""
        _check_text("reason", reason)
        self._ledger._close_reservation(self, "cancel", {"reason": reason})

    def __repr__(self) -> str:
        evs = ", ".join(event_summary(e) for e in self.events)
        return f"Reservation(id={self.id!r}, purpose={self.purpose!r}, events=[{evs}])"


class Ledger:
    """The privacy-budget ledger of one dataset inside a ledger (a file or a database).

    Open with :meth:`open`; see the module docstring for the format.
    """

    def __init__(self, store: LedgerStore, dataset_id: str, cap: Budget, *, pending: bool) -> None:
        self._store = store
        self.dataset_id = dataset_id
        self._cap = cap
        #: The dataset is new and its cap not written yet: it is written with the first
        #: reservation (or :meth:`register`), in the same transaction, so a release refused
        #: before it spends leaves the file as it was.
        self._pending = pending
        #: The data the next reservations read (:meth:`bind_data`): its fingerprint, and
        #: whether the caller said it is a new dataset although another id charged it.
        self._data: tuple[str, bool] | None = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        dataset_id: str,
        cap: Budget | None = None,
        create: bool = True,
        readonly: bool = False,
        timeout: float = 30.0,
    ) -> Ledger:
        """Open (or create) the ledger at ``path`` for ``dataset_id``.

        ``path`` is an SQLite file, or a PostgreSQL database as a URL,
        ``postgresql://user@host:port/database`` (the password from ``PGPASSWORD`` or
        ``~/.pgpass``; needs ``pip install 'privsynth[postgres]'``).

        * A new dataset needs ``cap``; it is recorded as the dataset's first entry, with the
          first reservation (or :meth:`register`): opening writes nothing.
        * An existing dataset keeps its cap: passing a *different* cap raises
          :class:`ConfigError` (change it with :meth:`set_cap`, which is recorded).
        * ``create=False``: never create the file or the dataset (nothing is written on open).
        * ``readonly=True``: read the file without writing (``describe``, ``verify``...).
        * Waits up to ``timeout`` seconds for another process's write to finish.

        The whole chain is verified on open; a tampered ledger raises :class:`LedgerCorrupt`.
        """
        _check_text("dataset_id", dataset_id, limit=200)
        if cap is not None:
            _check_cap(cap)
        store = open_store(path, create=create and not readonly, readonly=readonly, timeout=timeout)
        pending = False
        try:
            if readonly or not create:
                with store.read():
                    current = current_cap(store.verified_entries(), dataset_id)
                if current is None:
                    raise LedgerError(
                        f"ledger {store.location} holds no dataset {dataset_id!r} (it holds "
                        f"{store.datasets() or 'none'}); create it with `privsynth ledger "
                        f"init {store.location} --dataset-id {dataset_id} --cap-epsilon E "
                        "--cap-delta D`"
                    )
            else:
                with store.read():  # nothing is written until the first reservation
                    entries = store.verified_entries()
                    current = current_cap(entries, dataset_id)
                    if current is None:
                        if cap is None:
                            raise ConfigError(
                                f"dataset {dataset_id!r} has no budget cap in ledger "
                                f"{store.location}; pass cap=Budget(epsilon, delta) or run "
                                f"`privsynth ledger init {store.location} --dataset-id "
                                f"{dataset_id} --cap-epsilon E --cap-delta D`"
                            )
                        current, pending = cap, True
            if cap is not None and cap != current:
                raise ConfigError(
                    f"dataset {dataset_id!r} in ledger {store.location} has cap {current}, not "
                    f"{cap}; to change a cap call ledger.set_cap(new_cap, reason=...) or run "
                    f"`privsynth ledger init {store.location} --dataset-id {dataset_id} "
                    f"--cap-epsilon {format_param(cap.epsilon)} "
                    f"--cap-delta {format_param(cap.delta)} "
                    "--force-cap --reason TEXT` (the change is recorded in the ledger)"
                )
        except BaseException:
            store.close()
            raise
        return cls(store, dataset_id, current, pending=pending)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, dataset_id={self.dataset_id!r}, cap={self._cap})"

    @property
    def path(self) -> Path | str:
        """The ledger's file, or its database's URL without the password."""
        return self._store.path

    @property
    def name(self) -> str:
        """A short name for the ledger: its file's name, or its database's."""
        return self._store.name

    @property
    def cap(self) -> Budget:
        """The dataset's current cap (re-read from the file)."""
        with self._store.read():
            cap = current_cap(self._store.entries(), self.dataset_id)
        if cap is not None:
            self._cap = cap
        return self._cap

    # -- the data's identity --------------------------------------------------------------------

    def bind_data(self, fingerprint: str, *, new_dataset: bool = False) -> None:
        """Tie this dataset's next reservations to the data they read.

        ``fingerprint`` (e.g. ``sha256:...`` of the table's content) is recorded with every
        reservation. Data whose fingerprint another dataset id of this ledger already charged
        is refused (:class:`ConfigError` naming that id; checked now and again inside each
        reservation's transaction) unless this dataset charged it before: the same table under
        a new name must not get a fresh budget. ``new_dataset=True`` says it really is another
        dataset; that is recorded too (once: later releases of it need not say it again).

        Raises
        ------
        ConfigError
            The data was charged under another dataset id and ``new_dataset`` is false.
        """
        _check_text("fingerprint", fingerprint)
        self._data = (fingerprint, bool(new_dataset))
        with self._store.read():
            self._check_identity(self._store.verified_entries())

    def _check_identity(self, entries: list[dict]) -> list[str]:
        """The other dataset ids that charged this data; raises unless ``new_dataset``."""
        if self._data is None:
            return []
        fingerprint, new_dataset = self._data
        charged = {
            e["dataset_id"]
            for e in entries
            if e["kind"] == "reserve"
            and (e.get("metadata") or {}).get("data_fingerprint") == fingerprint
        }
        if self.dataset_id in charged:  # this dataset read this data before: settled then
            return []
        others = sorted(charged)
        if others and not new_dataset:
            raise ConfigError(
                f"this data was already charged in ledger {self.path} as dataset "
                f"{others[0]!r}, not {self.dataset_id!r}: its releases draw on that budget. "
                f"Release it as dataset {others[0]!r} (--dataset-id {others[0]}), or, if it "
                "is a different dataset, say so with new_dataset=True (--new-dataset; recorded "
                "in the ledger)"
            )
        return others

    def _data_metadata(self, entries: list[dict]) -> dict[str, Any]:
        others = self._check_identity(entries)
        if self._data is None:
            return {}
        out: dict[str, Any] = {"data_fingerprint": self._data[0]}
        if others:
            out["new_dataset_despite"] = others
        return out

    # -- spending -----------------------------------------------------------------------------

    def reserve(
        self,
        events: Sequence[Charge] | Charge,
        *,
        purpose: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reservation:
        """Atomically check ``events`` against the cap and record them as spent.

        Call this *before* reading any private data.  Raises :class:`BudgetExceeded` (nothing
        recorded) when the composed total of everything not cancelled plus ``events`` would
        exceed the cap's epsilon at the cap's delta.
        """
        evs = as_events(events)
        if not evs:
            raise ConfigError("reserve needs at least one privacy event")
        _check_text("purpose", purpose)
        meta = _check_metadata(metadata)
        with self._store.read():  # refused here, a new ledger's file is never made
            entries = self._store.verified_entries()
        self._check_fits(self._cap_in(entries), active_events(entries, self.dataset_id), evs)

        def write() -> dict:  # checked again inside the transaction, which no writer overlaps
            entries = self._store.verified_entries()
            cap = self._cap_in(entries)
            active = active_events(entries, self.dataset_id)
            self._check_fits(cap, active, evs)
            data = self._data_metadata(entries)
            entries = self._register_in(entries)  # refused above: nothing written
            self._cap_in(entries)
            return self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind="reserve",
                purpose=purpose,
                events=evs,
                reservation=uuid.uuid4().hex,
                metadata={**meta, **data},
            )

        entry = self._write("reserving budget", write)
        rid = entry["reservation"]
        logger.info(
            "ledger %s: dataset %r reserved %s for %r (reservation %s, seq %d)",
            self.path,
            self.dataset_id,
            ", ".join(map(event_summary, evs)),
            purpose,
            rid,
            entry["seq"],
        )
        return Reservation(self, rid, tuple(evs), purpose, entry["seq"])

    def _write(self, action: str, body: Callable[[], T]) -> T:
        """Run ``body`` in one write transaction of the store (run again after a conflict).

        ``body`` may note that the dataset's cap is now written (:meth:`_cap_in`); an attempt
        that did not commit has written nothing, so that note is undone after it.
        """
        before = (self._pending, self._cap)

        def attempt() -> T:
            self._pending, self._cap = before
            return body()

        try:
            return self._store.write(action, attempt)
        except BaseException:
            self._pending, self._cap = before
            raise

    def check(self, events: Sequence[Charge] | Charge) -> Budget:
        """Dry run of :meth:`reserve`: the composed total if ``events`` were added, or
        :class:`BudgetExceeded`.  Records nothing (another process may spend in between)."""
        evs = as_events(events)
        with self._store.read():
            entries = self._store.verified_entries()
        cap = self._cap_in(entries)
        total = self._check_fits(cap, active_events(entries, self.dataset_id), evs, log=False)
        return Budget(float_up(total), cap.delta)

    def _cap_in(self, entries: list[dict]) -> Budget:
        cap = current_cap(entries, self.dataset_id)
        if cap is None and self._pending:  # a new dataset, its cap not written yet
            return self._cap
        if cap is None:  # only if the dataset's cap entry vanished, which verify would catch
            raise LedgerCorrupt(f"ledger {self.path}: dataset {self.dataset_id!r} has no cap")
        if self._pending and cap != self._cap:  # another process created it meanwhile
            raise ConfigError(
                f"dataset {self.dataset_id!r} was created in ledger {self.path} with cap {cap} "
                f"while this one asked for {self._cap}; open it again"
            )
        self._pending = False
        self._cap = cap
        return cap

    def _register_in(self, entries: list[dict]) -> list[dict]:
        """Inside a write transaction: write a new dataset's cap if it is not in the file yet;
        the entries after it."""
        if not self._pending or current_cap(entries, self.dataset_id) is not None:
            return entries
        entry = self._store.append(
            entries[-1] if entries else None,
            dataset_id=self.dataset_id,
            kind="cap",
            purpose="initial cap",
            metadata={"cap": self._cap.to_dict()},
        )
        logger.info(
            "ledger %s: dataset %r created with cap %s", self.path, self.dataset_id, self._cap
        )
        return [*entries, entry]

    def register(self) -> None:
        """Write a new dataset's cap now (``privsynth ledger init``); a no-op once written."""
        self._write(
            "registering the dataset",
            lambda: self._cap_in(self._register_in(self._store.verified_entries())),
        )

    def _check_fits(
        self,
        cap: Budget,
        active: list[PrivacyEvent],
        request: list[PrivacyEvent],
        *,
        log: bool = True,
    ) -> Fraction:
        delta_q = as_rational(cap.delta)
        cap_q = as_rational(cap.epsilon)
        total = epsilon_spent_exact(active + request, delta_q)
        if total <= cap_q:
            return total  # type: ignore[return-value]
        spent = epsilon_spent_exact(active, delta_q)
        alone = epsilon_spent_exact(request, delta_q)
        remaining = max(Fraction(0), cap_q - spent) if spent != float("inf") else Fraction(0)
        why = ""
        if total == float("inf"):
            why = (
                " (no finite epsilon: the request needs a share of delta that the cap does not "
                "leave -- approximate-DP pieces use delta first, and zCDP/RDP pieces need "
                "delta > 0)"
            )
        msg = (
            f"privacy budget exceeded for dataset {self.dataset_id!r} in ledger {self.path}: "
            f"spent epsilon={format_param(float_up(spent))} (at delta={format_param(cap.delta)}); "
            f"the request [{', '.join(map(event_summary, request))}] costs "
            f"epsilon={format_param(float_up(alone))} on its own and would bring the composed "
            f"total to epsilon={format_param(float_up(total))}{why}, above the cap {cap}; "
            f"remaining: epsilon={format_param(float_down(remaining))}, "
            f"delta={format_param(cap.delta)}. Nothing was "
            "recorded. Ask for less, or raise the cap with `privsynth ledger init "
            f"{self.path} --dataset-id {self.dataset_id} --cap-epsilon E --cap-delta D "
            "--force-cap --reason TEXT` (the change is recorded)."
        )
        if log:  # INFO like the other budget events: the exception carries it to the user
            logger.info("%s", msg)
        raise BudgetExceeded(msg)

    def _close_reservation(self, res: Reservation, kind: str, metadata: dict) -> None:

        def write() -> dict:
            entries = self._store.verified_entries()
            state = reservation_states(entries, self.dataset_id).get(res.id)
            if state is None:
                raise LedgerError(
                    f"reservation {res.id} is not in ledger {self.path} for dataset "
                    f"{self.dataset_id!r}"
                )
            if state["state"] != "reserved":
                extra = (
                    " (a committed release cannot be refunded)"
                    if kind == "cancel" and state["state"] == "committed"
                    else ""
                )
                raise LedgerError(f"reservation {res.id} was already {state['state']}{extra}")
            return self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind=kind,
                purpose=res.purpose,
                reservation=res.id,
                metadata=metadata,
            )

        entry = self._write(f"recording a {kind}", write)
        logger.info(
            "ledger %s: dataset %r %s reservation %s (seq %d)%s",
            self.path,
            self.dataset_id,
            "committed" if kind == "commit" else "cancelled",
            res.id,
            entry["seq"],
            f": {metadata.get('reason')}" if kind == "cancel" else "",
        )

    def set_cap(self, new_cap: Budget, *, reason: str) -> None:
        """Change the dataset's cap; recorded as a ``cap`` entry with ``reason``.

        Refused (:class:`ConfigError`) if what is already spent has no finite epsilon at the
        new cap's delta.  A cap below what is spent is allowed: nothing more can be spent.
        """
        _check_cap(new_cap)
        _check_text("reason", reason)

        def write() -> tuple[Budget, bool]:
            entries = self._register_in(self._store.verified_entries())
            old = self._cap_in(entries)
            if new_cap == old:
                return old, False
            spent = epsilon_spent_exact(
                active_events(entries, self.dataset_id), as_rational(new_cap.delta)
            )
            if spent == float("inf"):
                raise ConfigError(
                    f"cannot set the cap of {self.dataset_id!r} to {new_cap}: what is already "
                    f"spent has no finite epsilon at delta={format_param(new_cap.delta)}; choose a "
                    "larger delta"
                )
            self._store.append(
                entries[-1],
                dataset_id=self.dataset_id,
                kind="cap",
                purpose="cap change",
                metadata={"cap": new_cap.to_dict(), "previous": old.to_dict(), "reason": reason},
            )
            return old, True

        old, changed = self._write("changing the cap", write)
        if not changed:
            logger.info("ledger %s: cap of %r is already %s", self.path, self.dataset_id, old)
            return
        self._cap = new_cap
        logger.warning(
            "ledger %s: cap of dataset %r changed from %s to %s: %s",
            self.path,
            self.dataset_id,
            old,
            new_cap,
            reason,
        )

    # -- reading ------------------------------------------------------------------------------

    def _snapshot(self) -> list[dict]:
        with self._store.read():
            return self._store.verified_entries()

    def _spent_q(self, entries: list[dict]) -> tuple[Budget, Fraction | float]:
        cap = self._cap_in(entries)
        return cap, epsilon_spent_exact(
            active_events(entries, self.dataset_id), as_rational(cap.delta)
        )

    def spent(self) -> Budget:
        """Composed epsilon (rounded up) of every reservation not cancelled, at the cap's delta."""
        cap, spent = self._spent_q(self._snapshot())
        if spent == float("inf"):
            raise LedgerError(f"what is spent on {self.dataset_id!r} has no finite epsilon")
        return Budget(float_up(spent), cap.delta)

    def remaining(self) -> Budget:
        """Cap epsilon minus spent epsilon (rounded down, floored at 0), at the cap's delta."""
        cap, spent = self._spent_q(self._snapshot())
        rem = max(Fraction(0), as_rational(cap.epsilon) - spent) if spent != float("inf") else 0
        return Budget(float_down(Fraction(rem)), cap.delta)

    def entries(self, *, all_datasets: bool = False) -> list[dict]:
        """The (verified) entries of this dataset, or of the whole file."""
        entries = self._snapshot()
        return plain_copy(
            [e for e in entries if all_datasets or e["dataset_id"] == self.dataset_id]
        )

    def reservations(self) -> list[dict]:
        """One dict per reservation of this dataset: id, seq, purpose, events, state."""
        return [
            {
                "id": rid,
                "seq": r["entry"]["seq"],
                "purpose": r["entry"]["purpose"],
                "events": plain_copy(r["entry"]["events"]),
                "state": r["state"],
            }
            for rid, r in reservation_states(self._snapshot(), self.dataset_id).items()
        ]

    def head(self) -> str:
        """Hash of the last entry of the file (the value to anchor externally)."""
        entries = self._snapshot()
        return entries[-1]["hash"] if entries else GENESIS_HASH

    def verify(self) -> None:
        """Verify the whole file: SQLite integrity, the hash chain, the stored head.

        Raises :class:`LedgerCorrupt` naming the first bad entry.
        """
        self._store.verify_full()

    def export_jsonl(self, path: str | os.PathLike) -> int:
        """Write the whole (verified) chain of the file as JSONL, atomically; return the count."""
        entries = self._snapshot()
        write_jsonl(path, entries)
        return len(entries)

    def summary(self, *, last: int = 10) -> dict:
        """The facts behind :meth:`describe`, as a JSON-ready dict."""
        entries = self._snapshot()
        cap, spent = self._spent_q(entries)
        return summarize(
            entries, path=self.path, dataset_id=self.dataset_id, cap=cap, spent=spent, last=last
        )

    def describe(self, *, last: int = 5) -> str:
        """A human summary: dataset, cap, spent, remaining, releases, the last entries."""
        return describe_summary(self.summary(last=last))
