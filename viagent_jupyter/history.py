"""The history: a record of every chat in the workspace database, searchable.

Every chat started through :meth:`Workspace.chat` / :meth:`Workspace.achat` (so every
``%%llm`` run too; the config panel's *Test* button excluded) is written, when its stream
ends, as one row of the ``history`` table: time, provider, model, the messages sent (system,
earlier turns, prompt; attachments only *described*, never their bytes above
:data:`INLINE_CAP`), the answer, reasoning, tool steps, finish reason, usage, cost, time to
first token and total time, the notebook and cell where known, and the error if it failed.
Every text goes through :func:`errors.scrub` first: no key is ever stored.

``prompt`` and ``answer`` are indexed with SQLite FTS5 (``history_fts``); a SQLite without
FTS5 falls back to ``LIKE`` (one note in the log). ``--chat`` threads live in
``history_threads`` so that a conversation survives a kernel restart.

Recording is one small transaction at the end of a stream and never fails a chat: a failed
write is logged once (``History.last_error`` keeps it) and the answer stands.

Turning it off: ``VIAGENT_LOG=0`` (process-wide), ``ws.history.enabled = False`` (this
workspace), ``with not_recorded(): ...`` (these calls), ``%%llm --no-log`` (one cell),
``c.LLMMagics.log = False`` (every cell). ``ws.history.retention_days = N`` drops older
rows; ``ws.history.clear()`` drops all of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigValidationError, ViagentError, scrub

if TYPE_CHECKING:
    from .db import Database

__all__ = ["CallInfo", "History", "Record", "not_recorded", "read_jsonl", "recording"]

log = logging.getLogger("viagent_jupyter.history")

#: A string value longer than this inside a message part that holds inline data (a data URL,
#: base64 image ``data``) is replaced by a description: the history keeps no image bytes.
INLINE_CAP = 2048
RETENTION_META = "history_retention_days"
_PRUNE_EVERY_S = 3600.0
_OFF = frozenset({"0", "false", "no", "off"})


# -- what the caller says about a call (magic, group, opt-out) --------------------------------

@dataclass(frozen=True)
class CallInfo:
    """Facts about the calls started in this context: who started them, whether to record
    them, the comparison group and the ``--chat`` thread they belong to."""

    source: str = "api"
    log: bool = True
    group: str | None = None
    thread: str | None = None


_DEFAULT_CALL = CallInfo()
_CALL: ContextVar[CallInfo] = ContextVar("viagent_history_call",
                                         default=_DEFAULT_CALL)  # frozen: safe to share


@contextlib.contextmanager
def recording(**facts: Any) -> Iterator[CallInfo]:
    """Chats *started* inside this block carry these :class:`CallInfo` facts."""
    info = dataclasses.replace(_CALL.get(), **facts)
    token = _CALL.set(info)
    try:
        yield info
    finally:
        _CALL.reset(token)


def not_recorded() -> contextlib.AbstractContextManager[CallInfo]:
    """Chats started inside this block are not written to the history."""
    return recording(log=False)


def env_enabled() -> bool:
    """False when ``$VIAGENT_LOG`` is 0/false/no/off."""
    return os.environ.get("VIAGENT_LOG", "1").strip().lower() not in _OFF


# -- one record -------------------------------------------------------------------------------

_COLUMNS = ("id", "created_at", "source", "provider", "model", "response_model", "system",
            "messages", "prompt", "answer", "reasoning", "steps", "finish_reason", "usage",
            "cost", "ttft", "total_time", "notebook", "cell", "thread", "group_id", "error",
            "error_code", "settings")
_JSON_COLUMNS = frozenset({"messages", "steps", "usage", "settings"})


@dataclass(frozen=True)
class Record:
    """One recorded chat (``ws.history`` yields these). ``time`` is an aware UTC datetime;
    ``ttft`` and ``total_time`` are seconds; ``group`` ties the answers of one comparison."""

    id: int
    time: datetime
    source: str
    provider: str
    model: str
    response_model: str | None = None
    system: str | None = None
    messages: list[Any] = field(default_factory=list)
    prompt: str = ""
    answer: str = ""
    reasoning: str | None = None
    steps: Any = None
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None
    ttft: float | None = None
    total_time: float | None = None
    notebook: str | None = None
    cell: int | None = None
    thread: str | None = None
    group: str | None = None
    error: str | None = None
    error_code: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> Record:
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in _JSON_COLUMNS:
            raw = values[name]
            values[name] = json.loads(raw) if raw else ({} if name in ("usage", "settings")
                                                        else [] if name == "messages" else None)
        values["time"] = datetime.fromtimestamp(values.pop("created_at"), timezone.utc)
        values["group"] = values.pop("group_id")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``time`` as ISO 8601)."""
        out = dataclasses.asdict(self)
        out["time"] = self.time.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        values = dict(data)
        values["time"] = datetime.fromisoformat(values["time"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def tokens(self) -> str:
        p, c = self.usage.get("prompt_tokens"), self.usage.get("completion_tokens")
        if p is None and c is None:
            return "-"
        return f"{'?' if p is None else p}/{'?' if c is None else c}"

    def markdown(self) -> str:
        """The whole exchange as Markdown (what ``%llm log show`` and the .md export print)."""
        head = (f"## #{self.id} · {self.time:%Y-%m-%d %H:%M:%S} UTC · "
                f"{self.provider}:{self.model}")
        facts = [f"finish: {self.finish_reason or '-'}", f"tokens: {self.tokens}"]
        if self.cost is not None:
            facts.append(f"cost: ${self.cost:.6f}")
        if self.ttft is not None:
            facts.append(f"first token: {self.ttft:.2f} s")
        if self.total_time is not None:
            facts.append(f"total: {self.total_time:.2f} s")
        if self.notebook or self.cell is not None:
            facts.append(f"where: {self.notebook or '?'} [{self.cell if self.cell else '?'}]")
        if self.thread:
            facts.append(f"thread: {self.thread}")
        if self.group:
            facts.append(f"group: {self.group}")
        parts = [head, "", " · ".join(facts), ""]
        if self.system:
            parts += ["**system**", "", self.system, ""]
        for msg in self.messages:
            role = msg.get("role", "?") if isinstance(msg, dict) else "?"
            content = msg.get("content", "") if isinstance(msg, dict) else msg
            text = content if isinstance(content, str) else json.dumps(content,
                                                                       ensure_ascii=False)
            parts += [f"**{role}**", "", text, ""]
        if self.reasoning:
            parts += ["**reasoning**", "", self.reasoning, ""]
        parts += ["**answer**", "", self.answer or "(empty)", ""]
        if self.error:
            parts += [f"**error** ({self.error_code or 'error'}): {self.error}", ""]
        return "\n".join(parts)


def read_jsonl(path: str | os.PathLike[str]) -> list[Record]:
    """The records of a ``.jsonl`` export."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(Record.from_dict(json.loads(line)))
    return out


# -- cleaning what is stored ------------------------------------------------------------------

def _clean(value: Any, key: str = "") -> Any:
    """Scrub keys out of every string; describe inline data instead of keeping it."""
    if isinstance(value, str):
        if len(value) > INLINE_CAP and (value.startswith("data:") or key in ("data", "url")):
            kind = value[5:value.find(";")] if value.startswith("data:") else key
            return f"[inline data: {kind}, {len(value):,} characters not kept]"
        return scrub(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[{len(value):,} bytes not kept]"
    if isinstance(value, dict):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, key) for v in value]
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if hasattr(value, "model_dump"):  # pydantic (a tool step, a usage object)
        return _clean(value.model_dump(mode="json"), key)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _clean(dataclasses.asdict(value), key)
    return scrub(repr(value))[:500]


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: Any) -> str | None:
    return None if value is None else scrub(str(value))


def _last_user_text(messages: Sequence[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content
                                if isinstance(p, dict) and p.get("text"))
    return ""


def _where() -> tuple[str | None, int | None]:
    """(notebook path, cell execution count) when running in IPython, else Nones."""
    if "IPython" not in sys.modules:  # never import IPython just to look
        return None, None
    try:
        from IPython.core.getipython import get_ipython

        shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]
    except Exception:
        return None, None
    if shell is None:
        return None, None
    cell = getattr(shell, "execution_count", None)
    ns = getattr(shell, "user_ns", None) or {}
    # VS Code puts the notebook's path in __vsc_ipynb_file__; Jupyter Server gives a kernel
    # JPY_SESSION_NAME (the notebook path, jupyter-server/jupyter_server#679 and #1100),
    # which ipykernel also exposes as __session__.
    path = (ns.get("__vsc_ipynb_file__") or ns.get("__session__")
            or os.environ.get("JPY_SESSION_NAME"))
    return (str(path) if path else None), (cell if isinstance(cell, int) else None)


def parse_since(value: str | float | datetime | None) -> float | None:
    """``2026-12-01``, ``2026-12-01T10:00`` (local time unless a zone is given), ``7d``,
    ``12h``, ``30m``, a datetime or a unix time → a unix time; bad input →
    :class:`ConfigValidationError`."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()  # a naive datetime is local time
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", value)
    if m:
        unit = {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
        return time.time() - float(m.group(1)) * unit
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigValidationError(
            f"Cannot read the date {value!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM, or 7d / 12h.",
            [{"field": "since", "message": "not a date"}],
        ) from None
    return when.timestamp()  # without a zone: local time, as %llm log shows it


def fts_query(text: str) -> str:
    """User words → an FTS5 query that cannot be a syntax error: every word is a quoted
    phrase (all must match); a trailing ``*`` keeps prefix search."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        word = word.rstrip("*") if prefix else word
        if word:
            terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


# -- the history ------------------------------------------------------------------------------

_INSERT = (f"INSERT INTO history ({', '.join(_COLUMNS[1:])}) "
           f"VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})")


class History:
    """``ws.history``: iterate it for :class:`Record` s (oldest first), ``search()`` it,
    ``export()`` it, ``to_dataframe()`` it. Threads of ``%%llm --chat`` are kept here too."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.enabled = True
        self.last_error: str | None = None  # the last failed write (reported once)
        self._reported = False
        self._fts: bool | None = None
        self._like_noted = False
        self._pruned_at = 0.0

    def __repr__(self) -> str:
        return f"<History {len(self)} records>"

    # -- recording ------------------------------------------------------------------------------
    def watch(self, stream: Any) -> None:
        """Record ``stream`` when it ends (wired by the Workspace on every chat it starts).
        The call's context (group, thread, notebook cell) is read now, in the caller."""
        call = _CALL.get()
        if not (self.enabled and call.log and env_enabled()):
            return
        notebook, cell = _where()
        created = time.time()

        def on_end(s: Any) -> None:
            self._record_safely(s, call, notebook, cell, created)

        stream.on_end = on_end

    def _record_safely(self, s: Any, call: CallInfo, notebook: str | None, cell: int | None,
                       created: float) -> None:
        try:
            self.record(s, call=call, notebook=notebook, cell=cell, created=created)
        except Exception as exc:  # never fail a chat over its record
            self.last_error = scrub(f"{type(exc).__name__}: {exc}")
            if not self._reported:
                self._reported = True
                log.warning("could not write this chat to the history (%s); the answer is "
                            "unaffected, later failures are not reported again",
                            self.last_error)

    def _values(self, s: Any, call: CallInfo, notebook: str | None, cell: int | None,
                created: float) -> tuple[Any, ...]:
        request = getattr(getattr(s, "_plan", None), "request", None)  # what was sent
        messages = list(getattr(request, "messages", None) or [])
        started, first, ended = s.started_at, s.first_token_at, s.ended_at
        usage = s.usage.model_dump() if hasattr(s.usage, "model_dump") else dict(s.usage or {})
        error = s.error
        steps = getattr(s, "steps", None)
        return (
            created, call.source, s.provider, s.requested_model, s.model,
            _text(getattr(request, "system", None)), _dumps(messages),
            scrub(_last_user_text(messages)),
            scrub(s.text), _text(getattr(s, "reasoning", None) or None),
            _dumps(steps) if steps else None, s.finish_reason, _dumps(usage), s.cost,
            None if first is None or started is None else first - started,
            None if ended is None or started is None else ended - started,
            notebook, cell, call.thread, call.group,
            None if error is None else scrub(str(error)),
            None if error is None else getattr(error, "code", type(error).__name__),
            _dumps(dict(getattr(request, "settings", None) or {})),
        )

    def record(self, s: Any, *, call: CallInfo | None = None, notebook: str | None = None,
               cell: int | None = None, created: float | None = None) -> int:
        """Write one ended chat stream; returns its id."""
        values = self._values(s, call or _CALL.get(), notebook, cell,
                              time.time() if created is None else created)
        with self._db.write() as conn:
            cur = conn.execute(_INSERT, values)
            self._maybe_prune(conn)
        return int(cur.lastrowid or 0)

    # -- retention ------------------------------------------------------------------------------
    @property
    def retention_days(self) -> float | None:
        """Records older than this many days are dropped (None: kept until cleared)."""
        raw = self._db.get_meta(RETENTION_META)
        return float(raw) if raw else None

    @retention_days.setter
    def retention_days(self, days: float | None) -> None:
        if days is not None and (not isinstance(days, (int, float)) or not days > 0
                                 or not math.isfinite(days)):
            raise ConfigValidationError(
                "retention_days must be a number of days > 0, or None to keep everything.",
                [{"field": "retention_days", "message": "must be > 0 or None"}])
        with self._db.write() as conn:
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = excluded.value",
                         (RETENTION_META, None if days is None else str(float(days))))
            self._pruned_at = 0.0
            self._maybe_prune(conn)

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = time.monotonic()
        if self._pruned_at and now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (RETENTION_META,)).fetchone()
        if row and row[0]:
            conn.execute("DELETE FROM history WHERE created_at < ?",
                         (time.time() - float(row[0]) * 86400,))

    # -- reading --------------------------------------------------------------------------------
    def _has_fts(self, conn: sqlite3.Connection) -> bool:
        if self._fts is None:
            self._fts = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_fts'"
                                     ).fetchone() is not None
        return self._fts

    def search(self, query: str | None = None, *, n: int | None = 20,
               provider: str | None = None, model: str | None = None,
               since: str | float | datetime | None = None,
               group: str | None = None) -> list[Record]:
        """Newest first: records whose prompt or answer match ``query`` (all its words;
        ``word*`` for a prefix), filtered by provider, model, ``since`` and group."""
        where: list[str] = []
        params: list[Any] = []
        if provider:
            where.append("h.provider = ?")
            params.append(provider)
        if model:
            where.append("(h.model = ? OR h.response_model = ?)")
            params += [model, model]
        start = parse_since(since)
        if start is not None:
            where.append("h.created_at >= ?")
            params.append(start)
        if group:
            where.append("h.group_id = ?")
            params.append(group)
        cols = ", ".join(f"h.{c}" for c in _COLUMNS)
        with self._db.read() as conn:
            sql = f"SELECT {cols} FROM history h"
            if query and query.strip():
                if self._has_fts(conn):
                    sql += " JOIN history_fts f ON f.rowid = h.id"
                    where.insert(0, "history_fts MATCH ?")
                    params.insert(0, fts_query(query))
                else:
                    self._note_like()
                    for word in query.split():
                        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%")\
                            .replace("_", "\\_") + "%"
                        where.append("(h.prompt LIKE ? ESCAPE '\\' OR h.answer LIKE ? "
                                     "ESCAPE '\\')")
                        params += [like, like]
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY h.created_at DESC, h.id DESC"
            if n is not None:
                sql += f" LIMIT {int(n)}"
            rows = conn.execute(sql, params).fetchall()
        return [Record._from_row(r) for r in rows]

    def _note_like(self) -> None:
        if not self._like_noted:
            self._like_noted = True
            log.warning("this SQLite has no FTS5: history search uses LIKE (slower, no "
                        "word matching)")

    def get(self, record_id: int) -> Record:
        cols = ", ".join(_COLUMNS)
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {cols} FROM history WHERE id = ?",
                               (int(record_id),)).fetchone()
        if row is None:
            raise ConfigValidationError(
                f"No history record #{record_id}; %llm log lists them.",
                [{"field": "id", "message": "not found"}])
        return Record._from_row(row)

    __getitem__ = get

    def __iter__(self) -> Iterator[Record]:
        return iter(reversed(self.search(n=None)))

    def __len__(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM history").fetchone()[0])

    def export(self, path: str | os.PathLike[str], records: Sequence[Record] | None = None
               ) -> int:
        """Write records (default: all, oldest first) to ``.jsonl`` or ``.md``; returns how
        many. The file is created private to the user (0600)."""
        target = Path(path).expanduser()
        suffix = target.suffix.lower()
        if suffix not in (".jsonl", ".md"):
            raise ConfigValidationError(
                f"Cannot export to {target.name}: use a .jsonl or .md file name.",
                [{"field": "path", "message": "must end in .jsonl or .md"}])
        items = list(self) if records is None else list(records)
        if suffix == ".jsonl":
            body = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in items)
        else:
            body = "# LLM history\n\n" + "\n---\n\n".join(r.markdown() for r in items)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        return len(items)

    def to_dataframe(self, records: Sequence[Record] | None = None) -> Any:
        """A pandas DataFrame of the records (pandas must be installed)."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "to_dataframe() needs pandas: pip install pandas (or use list(ws.history))."
            ) from None
        items = list(self) if records is None else list(records)
        return pd.DataFrame([dataclasses.asdict(r) for r in items])

    def clear(self) -> int:
        """Drop every record and every stored ``--chat`` thread, and compact the file so
        the deleted text is gone from it too. Returns how many records were dropped."""
        with self._db.write() as conn:
            count = int(conn.execute("SELECT count(*) FROM history").fetchone()[0])
            conn.execute("DELETE FROM history")
            conn.execute("DELETE FROM history_threads")
            if self._has_fts(conn):
                conn.execute("INSERT INTO history_fts(history_fts) VALUES ('rebuild')")
        self._compact()
        return count

    def _compact(self) -> None:
        with self._db.read() as conn, contextlib.suppress(sqlite3.Error):
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- --chat threads -------------------------------------------------------------------------
    def thread(self, name: str) -> list[dict[str, str]]:
        """The stored messages of a ``--chat`` thread ([] when there is none)."""
        with self._db.read() as conn:
            row = conn.execute("SELECT messages FROM history_threads WHERE name = ?",
                               (name,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def threads(self) -> list[str]:
        with self._db.read() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM history_threads ORDER BY name")]

    def save_thread(self, name: str, messages: Sequence[dict[str, str]]) -> None:
        data = json.dumps([_clean(dict(m)) for m in messages], ensure_ascii=False)
        with self._db.write() as conn:
            conn.execute("INSERT INTO history_threads VALUES (?, ?, ?) ON CONFLICT(name) DO "
                         "UPDATE SET messages = excluded.messages, "
                         "updated_at = excluded.updated_at", (name, data, time.time()))

    def drop_thread(self, name: str | None = None) -> int:
        """End one thread (or, with no name, every stored one); returns how many went."""
        with self._db.write() as conn:
            if name is None:
                cur = conn.execute("DELETE FROM history_threads")
            else:
                cur = conn.execute("DELETE FROM history_threads WHERE name = ?", (name,))
        return int(cur.rowcount)


def safe(action: Callable[[], Any], default: Any = None) -> Any:
    """Run a history read/write for the magic; a storage error is logged, never raised."""
    try:
        return action()
    except (ViagentError, sqlite3.Error) as exc:
        log.warning("history: %s", scrub(str(exc)))
        return default
