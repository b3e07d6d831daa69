"""Client-level tests of freshet with real Python drivers: psycopg 3 and SQLAlchemy 2.

The server binary comes from $FRESHET_BIN, else $CARGO_TARGET_DIR/debug/freshet,
else target/debug/freshet under the repository root. `cargo test` runs this file
through server/tests/python_clients.rs, which sets FRESHET_BIN.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


def find_binary() -> Path:
    env = os.environ.get("FRESHET_BIN")
    if env:
        p = Path(env)
        if not p.is_file():
            pytest.fail(f"FRESHET_BIN={env} does not exist")
        return p
    candidates = []
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        t = Path(target)
        if not t.is_absolute():
            t = REPO_ROOT / t
        candidates.append(t / "debug" / "freshet")
    candidates.append(REPO_ROOT / "target" / "debug" / "freshet")
    for c in candidates:
        if c.is_file():
            return c
    pytest.fail(
        "freshet binary not found; set FRESHET_BIN or run `cargo build -p freshet-server`"
        f" (looked in: {', '.join(map(str, candidates))})"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Freshet:
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=freshet dbname=freshet connect_timeout=10"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://freshet@127.0.0.1:{self.port}/freshet"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"


@pytest.fixture(scope="session")
def freshet(tmp_path_factory) -> Freshet:
    binary = find_binary()
    base = tmp_path_factory.mktemp("freshet")
    data_dir = base / "data"
    data_dir.mkdir()
    log_path = base / "freshet.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FRESHET_CONFIG"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Freshet(port, proc, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"freshet exited during start-up with {proc.returncode}:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            # The port is open; wait until a real session can be opened too.
            with psycopg.connect(server.dsn, autocommit=True) as c:
                c.execute("SELECT 1")
            break
        except (OSError, psycopg.OperationalError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"freshet did not listen on {port} within {STARTUP_TIMEOUT}s:\n{server.log()}")
        time.sleep(0.05)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def conn(freshet):
    """An autocommit psycopg connection."""
    with psycopg.connect(freshet.dsn, autocommit=True) as c:
        yield c


# ---------------------------------------------------------------------------
# psycopg 3
# ---------------------------------------------------------------------------

PARAM_ROWS = [
    (
        1,
        42,
        1.5,
        Decimal("123.456"),
        "hello",
        b"\x00\x01\xff",
        date(2024, 2, 29),
        datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=timezone.utc),
        True,
    ),
    (
        2,
        -(2**63),
        float("-inf"),
        Decimal("-0.001"),
        "ünïcødé 🦀 'single' \"double\" back\\slash\ttab\nnewline",
        b"",
        date(1969, 12, 31),
        datetime(1969, 7, 20, 20, 17, 40, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        False,
    ),
    (3, 2**63 - 1, 1e300, Decimal("999999999.999"), "", b"\\x", date(1, 1, 1),
     datetime(2000, 1, 1, tzinfo=timezone.utc), None),
    (4, None, None, None, None, None, None, None, None),
]


def _create_params_table(conn, name):
    conn.execute(
        f"""CREATE TABLE {name} (
            id int8 PRIMARY KEY, i int8, f float8, n numeric(12,3), s text,
            b bytea, d date, ts timestamptz, flag bool)"""
    )


def test_psycopg_parameters_round_trip(conn):
    _create_params_table(conn, "py_params")
    for row in PARAM_ROWS:
        cur = conn.execute("INSERT INTO py_params VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
        assert cur.rowcount == 1

    got = conn.execute("SELECT * FROM py_params ORDER BY id").fetchall()
    assert got == PARAM_ROWS

    first = got[0]
    assert type(first[1]) is int
    assert type(first[2]) is float
    assert isinstance(first[3], Decimal) and first[3].as_tuple().exponent == -3
    assert type(first[4]) is str
    assert type(first[5]) is bytes
    assert type(first[6]) is date
    assert isinstance(first[7], datetime) and first[7].tzinfo is not None
    assert first[8] is True
    assert got[1][2] == float("-inf")

    # The same rows through binary-format results.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT * FROM py_params ORDER BY id")
        assert cur.fetchall() == PARAM_ROWS

    # Parameters in WHERE clauses, one type at a time.
    def ids(sql, *params):
        return [r[0] for r in conn.execute(sql, params).fetchall()]

    assert ids("SELECT id FROM py_params WHERE i = %s", 42) == [1]
    assert ids("SELECT id FROM py_params WHERE i < %s ORDER BY id", 0) == [2]
    assert ids("SELECT id FROM py_params WHERE f > %s ORDER BY id", 1.0) == [1, 3]
    assert ids("SELECT id FROM py_params WHERE n >= %s ORDER BY id", Decimal("0")) == [1, 3]
    assert ids("SELECT id FROM py_params WHERE s = %s", PARAM_ROWS[1][4]) == [2]
    assert ids("SELECT id FROM py_params WHERE b = %s", b"\x00\x01\xff") == [1]
    assert ids("SELECT id FROM py_params WHERE d < %s ORDER BY id", date(1970, 1, 1)) == [2, 3]
    assert ids(
        "SELECT id FROM py_params WHERE ts = %s",
        datetime(1969, 7, 20, 14, 47, 40, tzinfo=timezone.utc),  # same instant as row 2
    ) == [2]
    assert ids("SELECT id FROM py_params WHERE flag = %s", False) == [2]
    assert ids("SELECT id FROM py_params WHERE flag IS NULL ORDER BY id") == [3, 4]

    # Server-side prepared statements (prepare=True) with the same results.
    for _ in range(3):
        row = conn.execute("SELECT s, n FROM py_params WHERE id = %s", (1,), prepare=True).fetchone()
        assert row == ("hello", Decimal("123.456"))


def test_psycopg_more_types(conn):
    conn.execute(
        """CREATE TABLE py_more (
            id int4 PRIMARY KEY, small int2, r float4, vc varchar(10), t time,
            ts timestamp, iv interval, j jsonb)"""
    )
    from psycopg.types.json import Jsonb

    doc = {"a": 1, "b": [True, None, "x"], "nested": {"ünï": "🦀"}}
    conn.execute(
        "INSERT INTO py_more VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (1, -32768, 0.5, "varchar", dtime(23, 59, 59, 999999),
         datetime(1900, 1, 1, 0, 0, 0, 1), timedelta(days=3, hours=4, microseconds=5), Jsonb(doc)),
    )
    conn.execute("INSERT INTO py_more (id) VALUES (%s)", (2,))
    rows = conn.execute("SELECT small, r, vc, t, ts, iv, j FROM py_more ORDER BY id").fetchall()
    assert rows[0] == (
        -32768, 0.5, "varchar", dtime(23, 59, 59, 999999),
        datetime(1900, 1, 1, 0, 0, 0, 1), timedelta(days=3, hours=4, microseconds=5), doc,
    )
    assert rows[1] == (None,) * 7
    r = conn.execute("SELECT r FROM py_more WHERE id = 1").fetchone()[0]
    assert isinstance(r, float)
    nan = conn.execute("SELECT CAST('NaN' AS float8)").fetchone()[0]
    assert math.isnan(nan)


def test_psycopg_executemany_1000_rows(freshet, conn):
    conn.execute("CREATE TABLE py_many (id int8 PRIMARY KEY, name text NOT NULL, score float8)")
    rows = [(i, f"name-{i}", i / 8) for i in range(1000)]
    # A non-autocommit connection: psycopg wraps the work in BEGIN ... COMMIT.
    with psycopg.connect(freshet.dsn) as tx_conn:
        with tx_conn.cursor() as cur:
            cur.executemany("INSERT INTO py_many (id, name, score) VALUES (%s, %s, %s)", rows)
            assert cur.rowcount == 1000
        tx_conn.commit()

    count, total, lo, hi = conn.execute(
        "SELECT count(*), sum(score), min(id), max(id) FROM py_many"
    ).fetchone()
    assert (count, lo, hi) == (1000, 0, 999)
    assert total == pytest.approx(sum(i / 8 for i in range(1000)))
    assert conn.execute("SELECT name, score FROM py_many WHERE id = 777").fetchone() == ("name-777", 97.125)

    # executemany of UPDATEs and DELETEs.
    with conn.cursor() as cur:
        cur.executemany("UPDATE py_many SET name = %s WHERE id = %s", [(f"upd-{i}", i) for i in range(0, 1000, 100)])
        assert cur.rowcount == 10
        cur.executemany("DELETE FROM py_many WHERE id = %s", [(i,) for i in range(500, 1000)])
        assert cur.rowcount == 500
    assert conn.execute("SELECT count(*) FROM py_many").fetchone()[0] == 500
    assert conn.execute("SELECT name FROM py_many WHERE id = 300").fetchone()[0] == "upd-300"


def test_psycopg_rollback_keeps_writes_with_warning(freshet, conn):
    # Freshet deliberately has no multi-statement transactions: every
    # statement commits on its own when it completes (see the README's
    # "Transactions"). BEGIN/COMMIT are accepted so drivers work, and a
    # ROLLBACK after writes cannot undo them: the writes stay and the client
    # gets a WARNING saying so. (PostgreSQL would discard row 2.)
    conn.execute("CREATE TABLE py_tx (id int8 PRIMARY KEY, v text)")
    notices = []
    with psycopg.connect(freshet.dsn) as tx_conn:
        # A Diagnostic is only readable inside the handler: keep its fields.
        tx_conn.add_notice_handler(lambda d: notices.append((d.severity, d.sqlstate, d.message_primary)))
        tx_conn.execute("INSERT INTO py_tx VALUES (1, 'kept')")
        tx_conn.commit()
        assert notices == []
        tx_conn.execute("INSERT INTO py_tx VALUES (2, 'also kept')")
        tx_conn.rollback()
    assert conn.execute("SELECT id, v FROM py_tx ORDER BY id").fetchall() == [(1, "kept"), (2, "also kept")]
    assert len(notices) == 1, notices
    severity, sqlstate, message = notices[0]
    assert severity == "WARNING"
    assert sqlstate == "01000"
    assert "ROLLBACK cannot undo" in message


COPY_ROWS = (
    [
        (
            i,
            f"row {i}",
            Decimal(i) / Decimal(4),
            date(2020, 1, 1) + timedelta(days=i),
            i % 2 == 0,
        )
        for i in range(1, 496)
    ]
    + [
        (1001, "tab\there", Decimal("1.00"), date(1969, 12, 31), True),
        (1002, "new\nline and back\\slash", Decimal("-99999999.99"), date(1, 1, 1), False),
        (1003, "ünïcødé 🦀, \"quotes\" and 'apostrophes'", Decimal("0.01"), date(9999, 12, 31), True),
        (1004, "", Decimal("0"), None, None),
        (1005, None, None, None, None),
    ]
)


def test_psycopg_copy_from_and_to(conn):
    conn.execute(
        "CREATE TABLE py_copy (id int8 PRIMARY KEY, name text, amount numeric(10,2), d date, flag bool)"
    )
    with conn.cursor() as cur:
        with cur.copy("COPY py_copy (id, name, amount, d, flag) FROM STDIN") as copy:
            for row in COPY_ROWS:
                copy.write_row(row)
        assert cur.rowcount == len(COPY_ROWS)

    assert conn.execute("SELECT count(*) FROM py_copy").fetchone()[0] == len(COPY_ROWS)
    assert conn.execute("SELECT * FROM py_copy ORDER BY id").fetchall() == COPY_ROWS
    assert conn.execute("SELECT name FROM py_copy WHERE id = 1004").fetchone()[0] == ""

    # COPY (query) TO STDOUT, parsed into typed rows.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, name, amount, d, flag FROM py_copy ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int8", "text", "numeric", "date", "bool"])
            got = list(copy.rows())
    assert got == COPY_ROWS

    # COPY table TO STDOUT, raw bytes: one line per row, escapes in place.
    with conn.cursor() as cur:
        with cur.copy("COPY py_copy TO STDOUT") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    lines = data.decode().splitlines()
    assert len(lines) == len(COPY_ROWS)
    assert "1\trow 1\t0.25\t2020-01-02\tf" in lines
    assert "1001\ttab\\there\t1.00\t1969-12-31\tt" in lines
    assert "1002\tnew\\nline and back\\\\slash\t-99999999.99\t0001-01-01\tf" in lines
    assert "1004\t\t0.00\t\\N\t\\N" in lines
    assert "1005\t\\N\t\\N\t\\N\t\\N" in lines

    # CSV with a header.
    with conn.cursor() as cur:
        with cur.copy(
            "COPY (SELECT id, name FROM py_copy WHERE id > 1000 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"
        ) as copy:
            csv_text = b"".join(bytes(chunk) for chunk in copy).decode()
    assert csv_text == (
        "id,name\n"
        '1001,tab\there\n'
        '1002,"new\nline and back\\slash"\n'
        '1003,"ünïcødé 🦀, ""quotes"" and \'apostrophes\'"\n'
        '1004,""\n'
        "1005,\n"
    )

    # Raw COPY FROM blocks (rows split across writes).
    with conn.cursor() as cur:
        with cur.copy("COPY py_copy FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write("2001,\"split ")
            copy.write("row\",5.5,2001-01-01,true\n2002,,,,\n")
    assert conn.execute("SELECT id, name, amount FROM py_copy WHERE id > 2000 ORDER BY id").fetchall() == [
        (2001, "split row", Decimal("5.50")),
        (2002, None, None),
    ]


def test_psycopg_errors(conn):
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM py_nope")
    with pytest.raises(psycopg.errors.SyntaxError):
        conn.execute("SELEC 1")
    conn.execute("CREATE TABLE py_err (id int8 PRIMARY KEY)")
    conn.execute("INSERT INTO py_err VALUES (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO py_err VALUES (%s)", (1,))
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute("INSERT INTO py_err VALUES ('one')")
    # The connection is still usable.
    assert conn.execute("SELECT count(*) FROM py_err").fetchone()[0] == 1


# ---------------------------------------------------------------------------
# SQLAlchemy 2 (postgresql+psycopg dialect)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(freshet):
    eng = sa.create_engine(freshet.url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def sa_tables(freshet):
    with psycopg.connect(freshet.dsn, autocommit=True) as c:
        c.execute(
            """CREATE TABLE sa_items (
                id int8 PRIMARY KEY,
                name varchar(50) NOT NULL,
                qty int4 DEFAULT 0,
                small int2,
                price numeric(10,2),
                ratio float8,
                r4 float4,
                active bool NOT NULL,
                note text,
                data bytea,
                born date,
                at_time time,
                created timestamp,
                created_tz timestamptz,
                span interval,
                doc jsonb
            )"""
        )
        c.execute("CREATE TABLE sa_pair (a int4, b text, v int8, PRIMARY KEY (a, b))")
    return ["sa_items", "sa_pair"]


SA_COLUMNS = [
    # name, type class, nullable
    ("id", sa.BIGINT, False),
    ("name", sa.VARCHAR, False),
    ("qty", sa.INTEGER, True),
    ("small", sa.SMALLINT, True),
    ("price", sa.NUMERIC, True),
    ("ratio", pg.DOUBLE_PRECISION, True),
    ("r4", pg.REAL, True),
    ("active", sa.BOOLEAN, False),
    ("note", sa.TEXT, True),
    ("data", pg.BYTEA, True),
    ("born", sa.DATE, True),
    ("at_time", pg.TIME, True),
    ("created", pg.TIMESTAMP, True),
    ("created_tz", pg.TIMESTAMP, True),
    ("span", pg.INTERVAL, True),
    ("doc", pg.JSONB, True),
]


def test_sqlalchemy_connects_and_queries(engine):
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT 1")).scalar() == 1
        assert c.execute(sa.text("SELECT :x + 1"), {"x": 41}).scalar() == 42
        assert engine.dialect.server_version_info is not None
        assert engine.dialect.server_version_info >= (9,)


def test_sqlalchemy_table_names(engine, sa_tables):
    names = sa.inspect(engine).get_table_names()
    for t in sa_tables:
        assert t in names
    assert sa.inspect(engine).has_table("sa_items")
    assert not sa.inspect(engine).has_table("sa_does_not_exist")


def test_sqlalchemy_columns(engine, sa_tables):
    cols = sa.inspect(engine).get_columns("sa_items")
    assert [c["name"] for c in cols] == [n for n, _, _ in SA_COLUMNS]
    by_name = {c["name"]: c for c in cols}
    for name, cls, nullable in SA_COLUMNS:
        col = by_name[name]
        assert type(col["type"]) is cls, f"{name}: reflected {col['type']!r}, expected {cls.__name__}"
        assert col["nullable"] is nullable, f"{name}: nullable={col['nullable']}"
    assert by_name["name"]["type"].length == 50
    assert (by_name["price"]["type"].precision, by_name["price"]["type"].scale) == (10, 2)
    assert by_name["created"]["type"].timezone is False
    assert by_name["created_tz"]["type"].timezone is True
    assert by_name["at_time"]["type"].timezone is False
    # Server defaults: an int literal default and no default.
    assert by_name["qty"]["default"] is not None and by_name["qty"]["default"].strip("()") == "0"
    assert by_name["note"]["default"] is None
    assert by_name["id"]["default"] is None


def test_sqlalchemy_primary_keys(engine, sa_tables):
    insp = sa.inspect(engine)
    pk = insp.get_pk_constraint("sa_items")
    assert pk["constrained_columns"] == ["id"]
    assert pk["name"] == "sa_items_pkey"
    pk = insp.get_pk_constraint("sa_pair")
    assert pk["constrained_columns"] == ["a", "b"]
    assert pk["name"] == "sa_pair_pkey"
    cols = {c["name"]: c for c in insp.get_columns("sa_pair")}
    assert cols["a"]["nullable"] is False and cols["b"]["nullable"] is False
    assert cols["v"]["nullable"] is True


def test_sqlalchemy_core_round_trip(engine, sa_tables):
    md = sa.MetaData()
    items = sa.Table("sa_items", md, autoload_with=engine)
    assert [c.name for c in items.primary_key.columns] == ["id"]
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    with engine.begin() as c:
        c.execute(
            sa.insert(items),
            [
                {"id": 1, "name": "first", "active": True, "price": Decimal("9.99"),
                 "doc": {"k": [1, 2]}, "created_tz": when},
                {"id": 2, "name": "second", "active": False, "price": None,
                 "doc": None, "created_tz": None},
            ],
        )
    with engine.connect() as c:
        rows = c.execute(
            sa.select(items.c.id, items.c.name, items.c.qty, items.c.price, items.c.doc, items.c.created_tz)
            .order_by(items.c.id)
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, "first", 0, Decimal("9.99"), {"k": [1, 2]}, when),
            (2, "second", 0, None, None, None),
        ]
        n = c.execute(sa.select(sa.func.count()).select_from(items).where(items.c.active)).scalar()
        assert n == 1
    with engine.begin() as c:
        res = c.execute(sa.update(items).where(items.c.id == 2).values(qty=5, note="updated"))
        assert res.rowcount == 1
        res = c.execute(sa.delete(items).where(items.c.id == 1))
        assert res.rowcount == 1
    with engine.connect() as c:
        rows = c.execute(sa.select(items.c.id, items.c.qty, items.c.note)).all()
        assert [tuple(r) for r in rows] == [(2, 5, "updated")]
