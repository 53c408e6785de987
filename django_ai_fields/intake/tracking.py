"""Change detection: what trigger fields held at load, compared after save.

Only trigger fields are followed, deferred fields are skipped, and a save that
changed no trigger makes no query. Wired per model in AppConfig.ready().

Loading rows must stay cheap (docs/performance.md has the measurements):

- The load-time state is recorded in the model's ``from_db()``, not on
  ``post_init``: dispatching a signal for every row cost more than the work.
- For a fully loaded row it is a *fingerprint*: the ``hash()`` of each trigger
  value packed into one ``bytes``. Keeping any container per row (a dict or a
  tuple of the values) makes CPython's garbage collector run more often while
  a queryset is built, which cost 30-50% of the load time of a small row;
  ``bytes`` is not tracked by the collector. Equal values have equal hashes, so
  a value that did not change is never taken for changed; the one common
  collision (``hash(-1) == hash(-2)``) is refused at load, and any other needs
  a 64-bit hash collision. Fingerprints never leave the process: pickling
  turns one into exact values first, since ``str`` hashes differ per process.
- Exact values (a dict, ``SNAPSHOT_ATTR``) are kept instead for partial rows
  (deferred fields), JSON triggers (mutable in place, so deep-copied) and
  unhashable values, and for every value written by a save or a refresh.

An instance built in Python has neither, so on an UPDATE save its triggers count
as changed: nothing proves they match the row.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.migrations.state import StateApps
from django.db.models.signals import m2m_changed, post_save
from django.utils.inspect import func_accepts_kwargs, func_supports_parameter

from ..declare import chains, file_inputs
from ..declare.prompts import PromptSyntaxError
from ..fields import AIFieldMixin, ai_fields_of

SNAPSHOT_ATTR = "_ai_fields_snapshot"
FINGERPRINT_ATTR = "_ai_fields_fingerprint"
_AMBIGUOUS = hash(-1)  # -1 and -2 hash alike (so do -1.0, Decimal(-2)...)
_HOOKED = "_ai_fields_hook"


class TriggerTracker:
    """Tracks the trigger fields of one model class."""

    def __init__(self, model: type[models.Model], fields: list[AIFieldMixin]):
        self.model = model
        self.fields = fields
        attnames: dict[str, None] = {}
        for field in fields:
            attnames.update(dict.fromkeys(field.trigger_attnames))
        # AI columns whose hand edits are kept: followed like triggers.
        self.edit_fields = {f.attname: f for f in fields if f.ai.keep_manual_edits}
        attnames.update(dict.fromkeys(self.edit_fields))
        self.attnames = tuple(attnames)
        concrete = model._meta.concrete_fields
        self.names = {f.attname: f.name for f in concrete}
        self.mutable = tuple(
            f.attname for f in concrete if f.attname in attnames and isinstance(f, models.JSONField)
        )
        # Where each trigger sits in the values Model.from_db() receives for a full row.
        positions = {f.attname: i for i, f in enumerate(concrete)}
        self.width = len(concrete)
        self.slots = {attname: slot for slot, attname in enumerate(self.attnames)}
        self.fingerprinting = not self.mutable and all(a in positions for a in self.attnames)
        hashes = struct.Struct(f"{len(self.attnames)}q")
        self.pack, self.unpack = hashes.pack, hashes.unpack
        self.triggers_of = _getter([positions.get(a, 0) for a in self.attnames])

    def connect(self) -> None:
        uid = f"django_ai_fields:{self.model._meta.label}"
        post_save.connect(self.on_post_save, sender=self.model, weak=False, dispatch_uid=uid)
        for name in dict.fromkeys(n for f in self.fields for n in f.trigger_m2m_names):
            _connect_m2m(self.model, name)
        _hook(self.model, "from_db", _from_db_hook)
        _hook(self.model, "refresh_from_db", _refresh_hook)
        _hook(self.model, "__getstate__", _getstate_hook)
        file_inputs.watch_uploads(self.model, self.attnames)

    # -- recording --------------------------------------------------------------

    def loaded(self, instance: models.Model, values: Any) -> None:
        """Record the trigger values of a row just read from the database (hot path)."""
        if self.fingerprinting and len(values) == self.width:
            try:
                hashes = tuple(map(hash, self.triggers_of(values)))
            except TypeError:  # an unhashable value: exact values for this model
                self.fingerprinting = False
            else:
                if _AMBIGUOUS not in hashes:
                    # setattr, not __dict__[...]: reading __dict__ makes CPython build it.
                    setattr(instance, FINGERPRINT_ATTR, self.pack(*hashes))
                    return
        instance.__dict__[SNAPSHOT_ATTR] = self.snapshot(instance)

    def snapshot(
        self, instance: models.Model, attnames: Iterable[str] | None = None
    ) -> dict[str, Any]:
        values = instance.__dict__
        taken = {a: values[a] for a in (attnames or self.attnames) if a in values}
        for attname in self.mutable:
            if attname in taken:
                taken[attname] = copy.deepcopy(taken[attname])
        return taken

    def remember(self, instance: models.Model, attnames: Iterable[str] | None) -> None:
        """The current values of ``attnames`` (all triggers if None) are the row's now."""
        instance.__dict__.setdefault(SNAPSHOT_ATTR, {}).update(self.snapshot(instance, attnames))

    def refreshed(self, instance: models.Model, fields: Iterable[str] | None) -> None:
        """Values reloaded by refresh_from_db() (or a deferred field's first read)."""
        names = None if fields is None else set(fields)
        attnames = [
            a for a in self.attnames if names is None or a in names or self.names.get(a) in names
        ]
        if attnames:
            self.remember(instance, attnames)

    def settled(self, state: dict[str, Any]) -> dict[str, Any]:
        """Exact values for a fingerprint: the current values that still match it
        (a changed value is left out, so it still counts as changed)."""
        snapshot = dict(state.get(SNAPSHOT_ATTR) or {})
        hashes = self.unpack(state[FINGERPRINT_ATTR])
        for attname, slot in self.slots.items():
            if attname in state and attname not in snapshot:
                value = state[attname]
                if not _hash_differs(value, hashes[slot]):
                    snapshot[attname] = value
        return snapshot

    # -- comparing --------------------------------------------------------------

    def changed_attnames(
        self, instance: models.Model, update_fields: frozenset[str] | None
    ) -> set[str]:
        values = instance.__dict__
        snapshot = values.get(SNAPSHOT_ATTR) or {}
        fingerprint = values.get(FINGERPRINT_ATTR)
        hashes = self.unpack(fingerprint) if fingerprint is not None else None
        candidates = self.attnames
        if update_fields is not None:
            candidates = tuple(self._saved_attnames(update_fields))
        changed = set()
        for attname in candidates:
            if attname not in values:
                continue
            if attname in snapshot:
                differs = snapshot[attname] != values[attname]
            elif hashes is not None:
                differs = _hash_differs(values[attname], hashes[self.slots[attname]])
            else:
                # Nothing recorded (deferred at load, or an instance built in Python)
                # but written now: we cannot prove it did not change.
                differs = True
            if differs:
                changed.add(attname)
        return changed | file_inputs.uploaded(instance, candidates)

    def _saved_attnames(self, update_fields: frozenset[str]) -> list[str]:
        opts = self.model._meta
        names = set()
        for name in update_fields:
            field = cast("models.Field[Any, Any]", opts.get_field(name))  # save() checked it
            names.add(field.attname)
        return [a for a in self.attnames if a in names]

    def on_post_save(
        self,
        sender: type,
        instance: models.Model,
        created: bool,
        raw: bool,
        using: str,
        update_fields: frozenset[str] | None,
        **kwargs: Any,
    ) -> None:
        if raw:
            return
        changed = self.changed_attnames(instance, update_fields)
        if not changed and not created:
            return
        self.remember(instance, changed or None)
        edited = self.hand_edited(instance, created, changed)
        if edited:
            from .outbox import record_hand_edits

            record_hand_edits(instance, edited, using=using)
        self.request(
            instance,
            changed,
            created=created,
            triggered_by="create" if created else "save",
            using=using,
            skip=edited,
        )

    def request(
        self,
        instance: models.Model,
        changed: set[str],
        *,
        created: bool = False,
        triggered_by: str,
        using: str | None = None,
        skip: Iterable[AIFieldMixin] = (),
    ) -> None:
        """Request jobs for the fields of this row whose triggers are in ``changed``,
        and for the multi-table children's fields that depend on them."""
        skipped = set(skip)
        fields = [
            f
            for f in self.fields
            if f.ai.auto_regenerate
            and f not in skipped
            and self._wants_job(f, instance, created, changed)
        ]
        if fields:
            from .outbox import request_jobs

            request_jobs(instance, fields, triggered_by=triggered_by, using=using)
        if not created and changed:
            _request_for_children(self.model, instance, changed, triggered_by, using)

    def hand_edited(
        self, instance: models.Model, created: bool, changed: set[str]
    ) -> list[AIFieldMixin]:
        """AI fields given a non-empty value by this save (a person's edit): a new
        row's given values, or a loaded row's changed ones."""
        values = instance.__dict__
        recorded = values.get(SNAPSHOT_ATTR) or {}
        has_fingerprint = FINGERPRINT_ATTR in values
        return [
            field
            for attname, field in self.edit_fields.items()
            if values.get(attname) not in (None, "", [], {})
            and (created or (attname in changed and (has_fingerprint or attname in recorded)))
        ]

    def m2m_changed(self, instance: models.Model, name: str, using: str) -> None:
        """A many-to-many trigger of ``instance`` was added to, removed from or cleared."""
        fields = [f for f in self.fields if f.ai.auto_regenerate and name in f.trigger_m2m_names]
        if fields:
            from .outbox import request_jobs

            request_jobs(instance, fields, triggered_by="m2m", using=using)

    @staticmethod
    def _wants_job(
        field: AIFieldMixin, instance: models.Model, created: bool, changed: set[str]
    ) -> bool:
        if created:
            # A new row gets a value unless every input is empty.
            return any(getattr(instance, a) not in (None, "") for a in field.trigger_attnames)
        return not changed.isdisjoint(field.trigger_attnames)


def _getter(indexes: list[int]) -> Callable[[Any], Any]:
    """row -> the values at ``indexes``, always as a sequence."""
    if len(indexes) > 1:
        return itemgetter(*indexes)
    return lambda row: [row[i] for i in indexes]


def _hash_differs(value: Any, recorded: int) -> bool:
    try:
        return hash(value) != recorded
    except TypeError:  # an unhashable value was assigned since
        return True


_trackers: dict[type[models.Model], TriggerTracker] = {}


def _from_db_hook(original: Callable[..., Any]) -> classmethod[Any, ..., Any]:
    if not (func_supports_parameter(original, "fetch_mode") or func_accepts_kwargs(original)):
        # Django < 6.1, or a model's own from_db() written before 6.1's fetch modes:
        # the same signature, so Django warns about that override as it would without us.
        def from_db(cls: type[models.Model], db: str, field_names: Any, values: Any) -> Any:
            instance = original(cls, db, field_names, values)
            tracker = _trackers.get(cls)
            if tracker is not None:
                tracker.loaded(instance, values)
            return instance

        return classmethod(from_db)

    def from_db_with_fetch_mode(
        cls: type[models.Model], db: str, field_names: Any, values: Any, *, fetch_mode: Any = None
    ) -> Any:
        instance = original(cls, db, field_names, values, fetch_mode=fetch_mode)
        tracker = _trackers.get(cls)
        if tracker is not None:
            tracker.loaded(instance, values)
        return instance

    return classmethod(from_db_with_fetch_mode)


def _refresh_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def refresh_from_db(
        self: models.Model, using: str | None = None, fields: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        original(self, using, fields, *args, **kwargs)
        tracker = _trackers.get(type(self))
        if tracker is not None:
            tracker.refreshed(self, fields)

    return refresh_from_db


def _getstate_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def __getstate__(self: models.Model) -> Any:
        state = original(self)
        tracker = _trackers.get(type(self))
        if tracker is not None and isinstance(state, dict) and FINGERPRINT_ATTR in state:
            state[SNAPSHOT_ATTR] = tracker.settled(state)
            del state[FINGERPRINT_ATTR]
        return state

    return __getstate__


def _hook(model: type[models.Model], name: str, wrap: Callable[[Any], Any]) -> None:
    """Wrap ``model.<name>`` (the model's own or inherited one) unless a parent's
    wrapper is already in place; the wrapper finds the tracker by the instance's class."""
    current = getattr(model, name)
    function = getattr(current, "__func__", current)
    if getattr(function, _HOOKED, False):
        return
    wrapped = wrap(function)
    setattr(getattr(wrapped, "__func__", wrapped), _HOOKED, True)
    setattr(model, name, wrapped)


def install(model: type[models.Model]) -> TriggerTracker | None:
    """Attach tracking to a model with AI fields (idempotent)."""
    if model in _trackers:
        return _trackers[model]
    # Historical models of migrations carry no AI options: never track them.
    if model._meta.abstract or isinstance(model._meta.apps, StateApps):
        return None
    fields = [f for f in ai_fields_of(model) if _is_configured(f)]
    if not fields:
        return None
    tracker = TriggerTracker(model, fields)
    _trackers[model] = tracker
    tracker.connect()
    return tracker


def _is_configured(field: AIFieldMixin) -> bool:
    """False for a field whose triggers cannot be resolved, or that is part of a cycle
    of AI fields (it would regenerate forever); the system checks report both."""
    try:
        field.trigger_attnames  # noqa: B018
        field.trigger_m2m_names  # noqa: B018
    except (PromptSyntaxError, FieldDoesNotExist):
        return False
    return not chains.in_cycle(field)


def tracker_for(model: type[models.Model]) -> TriggerTracker | None:
    return _trackers.get(model)


def value_written(instance: models.Model, field: AIFieldMixin, using: str | None = None) -> None:
    """An AI field's new value was written (generation.py's write-back): the AI fields
    that depend on it, on this row and on its multi-table children, are requested."""
    tracker = _trackers.get(type(instance))
    if tracker is not None:
        tracker.request(instance, {field.attname}, triggered_by="chain", using=using)


# -- multi-table inheritance: a save through the parent --------------------------


def _children_fields(model: type[models.Model]) -> list[tuple[type[models.Model], list[Any]]]:
    """(descendant model, its AI fields not inherited from ``model``) for each tracked
    multi-table descendant of ``model``."""
    mine = {model, *model._meta.get_parent_list()}
    found = []
    for child, tracker in _trackers.items():
        if child is model or child._meta.proxy or model not in child._meta.get_parent_list():
            continue
        own = [f for f in tracker.fields if f.model not in mine]
        if own:
            found.append((child, own))
    return found


def _request_for_children(
    model: type[models.Model],
    instance: models.Model,
    changed: set[str],
    triggered_by: str,
    using: str | None,
) -> None:
    """A row saved through ``model`` whose changed columns feed AI fields declared on a
    descendant: load the descendant row (one query per such model) and request them."""
    if type(instance) is not model:
        return  # saved through the child itself: its own post_save covers its fields
    for child, fields in _children_fields(model):
        wanted = [
            f for f in fields if f.ai.auto_regenerate and not changed.isdisjoint(f.trigger_attnames)
        ]
        if not wanted:
            continue
        row = child._base_manager.using(using or "default").filter(pk=instance.pk).first()
        if row is not None:
            from .outbox import request_jobs

            request_jobs(row, wanted, triggered_by=triggered_by, using=using)


# -- many-to-many triggers ---------------------------------------------------------

_PRE_CLEAR_ATTR = "_ai_fields_pre_clear"


def _connect_m2m(model: type[models.Model], name: str) -> None:
    """Regenerate on add(), remove(), set() and clear() of ``model.<name>``."""
    field = model._meta.get_field(name)
    through = field.remote_field.through  # type: ignore[union-attr]
    if isinstance(through, str):  # not resolved yet (a model built late): not tracked
        return
    receiver = _M2MReceiver(field)
    uid = f"django_ai_fields:m2m:{through._meta.label}"
    m2m_changed.connect(receiver, sender=through, weak=False, dispatch_uid=uid)


class _M2MReceiver:
    """The m2m_changed receiver of one many-to-many field (either side may change it)."""

    def __init__(self, field: Any) -> None:
        self.name = field.name
        self.through = field.remote_field.through
        self.source = field.m2m_field_name()  # through's FK to the model with the field
        self.target = field.m2m_reverse_field_name()

    def __call__(
        self,
        sender: type,
        instance: models.Model,
        action: str,
        reverse: bool,
        model: type[models.Model],
        pk_set: set[Any] | None,
        using: str,
        **kwargs: Any,
    ) -> None:
        if action == "pre_clear":
            if reverse:  # remember which rows lose the relation: post_clear has no pk_set
                instance.__dict__[_PRE_CLEAR_ATTR] = self._rows_of(instance, using)
            return
        if action not in ("post_add", "post_remove", "post_clear"):
            return
        if action != "post_clear" and not pk_set:
            return
        if not reverse:
            self._changed(instance, using)
            return
        if action == "post_clear":
            pks: Iterable[Any] = instance.__dict__.pop(_PRE_CLEAR_ATTR, [])
        else:
            pks = pk_set or ()  # not empty: checked above
        for row in model._base_manager.using(using).filter(pk__in=list(pks)):
            self._changed(row, using)

    def _rows_of(self, target: models.Model, using: str) -> list[Any]:
        links = self.through._base_manager.using(using).filter(**{self.target: target.pk})
        return list(links.values_list(f"{self.source}_id", flat=True))

    def _changed(self, row: models.Model, using: str) -> None:
        tracker = _trackers.get(type(row))
        if tracker is not None:
            tracker.m2m_changed(row, self.name, using)
