"""A searchable index of every feature in a feature store: one SQLite table built from the
store's labels, so the browser can filter, sort and page tens of thousands of features without
loading them into the server's memory on each request.

SQLite rather than an in-memory list: it is in the standard library, its indexes make each
filtered, sorted page a bounded query, and the index file lives beside the store it was built
from (`<store>/features.sqlite`), rebuilt when any label file is newer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import WhisperLensError
from ..features.store import FeatureStore, labels_path
from ..storage import atomic_path

INDEX_FILE = "features.sqlite"
# Columns a page can sort by, and what each is called on the page.
SORTABLE = {"feature": "site, feature", "site": "site", "basis": "basis", "phone": "phone",
            "selectivity": "selectivity", "max": "max_value", "firing": "firing_rate", "score": "score"}
SCHEMA = """
CREATE TABLE features (
  id TEXT PRIMARY KEY, site TEXT, basis TEXT, hook TEXT, stack TEXT, feature INTEGER,
  phone TEXT, selectivity REAL, top3 TEXT, selective INTEGER, polyphonetic INTEGER,
  max_value REAL, firing_rate REAL, score REAL, token TEXT
);
CREATE INDEX by_phone ON features (phone, selectivity);
CREATE INDEX by_site ON features (site, score);
CREATE INDEX by_score ON features (score);
CREATE INDEX by_max ON features (max_value);
CREATE INDEX by_firing ON features (firing_rate);
CREATE INDEX by_selectivity ON features (selectivity);
"""


@dataclass(frozen=True)
class FeatureQuery:
    """A page of the feature browser: filters, sort and page, already validated (params.py)."""

    q: str = ""  # free text: part of a feature id, a phone or a token
    site: str = ""
    basis: str = ""
    phone: str = ""
    selective: bool | None = None
    polyphonetic: bool | None = None
    min_selectivity: float | None = None
    max_selectivity: float | None = None
    min_firing: float | None = None
    max_firing: float | None = None
    sort: str = "score"
    descending: bool = True
    page: int = 1
    per_page: int = 50


@dataclass
class FeaturePage:
    rows: list[dict]
    total: int
    query: FeatureQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


class FeatureIndex:
    """The index of one store; `search` is safe to call from several threads."""

    def __init__(self, store: FeatureStore, path: Path | None = None):
        self.store = store
        self.path = Path(path) if path else store.root / INDEX_FILE
        if _stale(self.path, store):
            build_index(store, self.path)
        self._local = threading.local()  # sqlite3 connections belong to the thread that made them
        with self._connection() as connection:
            self.sites = [row[0] for row in connection.execute("SELECT DISTINCT site FROM features ORDER BY site")]
            self.bases = [row[0] for row in connection.execute("SELECT DISTINCT basis FROM features ORDER BY basis")]
            self.phones = [row[0] for row in connection.execute(
                "SELECT DISTINCT phone FROM features WHERE phone IS NOT NULL AND stack = 'encoder' ORDER BY phone")]
            self.size = connection.execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    def search(self, query: FeatureQuery) -> FeaturePage:
        where, values = [], []
        if query.q:
            pattern = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(id LIKE ? ESCAPE '\\' OR phone = ? COLLATE NOCASE OR token LIKE ? ESCAPE '\\')")
            values += [pattern, query.q.strip(), pattern]
        for column, value in (("site", query.site), ("basis", query.basis), ("phone", query.phone)):
            if value:
                where.append(f"{column} = ?")
                values.append(value)
        for column, value in (("selective", query.selective), ("polyphonetic", query.polyphonetic)):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(int(value))
        for column, low, high in (("selectivity", query.min_selectivity, query.max_selectivity),
                                  ("firing_rate", query.min_firing, query.max_firing)):
            if low is not None:
                where.append(f"{column} >= ?")
                values.append(low)
            if high is not None:
                where.append(f"{column} <= ?")
                values.append(high)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        direction = "DESC" if query.descending else "ASC"
        order = ", ".join(f"{column} {direction}" for column in SORTABLE[query.sort].split(", "))
        connection = self._connection()
        total = connection.execute(f"SELECT COUNT(*) FROM features{clause}", values).fetchone()[0]
        rows = connection.execute(f"SELECT * FROM features{clause} ORDER BY {order}, id LIMIT ? OFFSET ?",
                                  [*values, query.per_page, (query.page - 1) * query.per_page]).fetchall()
        return FeaturePage([_row(row) for row in rows], total, query)


def _row(row: sqlite3.Row) -> dict:
    data = dict(row)
    data["top3"] = json.loads(data["top3"])
    data["selective"], data["polyphonetic"] = bool(data["selective"]), bool(data["polyphonetic"])
    return data


def _stale(path: Path, store: FeatureStore) -> bool:
    if not path.exists():
        return True
    built = path.stat().st_mtime
    sources = [store.root / "manifest.json"] + [labels_path(store.root, site) for site in store.sites]
    return any(source.exists() and source.stat().st_mtime > built for source in sources)


def build_index(store: FeatureStore, path: Path) -> Path:
    """Write the index of every labelled site of `store` to `path` (atomically)."""
    rows = []
    for site in store.sites:
        info = store.site_info(site)
        try:
            labels = store.labels(site)
        except WhisperLensError:
            continue  # a site not labelled yet: not browsable
        stack = "decoder" if info["hook"].startswith("decoder.") else "encoder"
        for label in labels:
            phone = label.get("top_phone")
            share = label["top_share"]
            rows.append((f"{site}:{label['feature']}", site, info["kind"], info["hook"], stack, label["feature"],
                         phone, share, json.dumps(label.get("top3", [])), int(label.get("selective", False)),
                         int(label.get("polyphonetic", False)), label["max_value"], label["firing_rate"],
                         label["score"], label.get("top_token")))
    with atomic_path(path) as tmp:
        connection = sqlite3.connect(tmp)
        try:
            connection.executescript(SCHEMA)
            connection.executemany(f"INSERT INTO features VALUES ({', '.join('?' * 15)})", rows)
            connection.commit()
        finally:
            connection.close()
    return path
