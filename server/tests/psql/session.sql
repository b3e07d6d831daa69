-- psql session run by server/tests/psql.rs; expected output in session.out.
-- Run from a directory that holds in.csv (written by the test).
CREATE TABLE t (
    id int8 PRIMARY KEY,
    name text NOT NULL,
    price numeric(10,2),
    qty int4 DEFAULT 0,
    active bool NOT NULL DEFAULT true,
    created date
);
INSERT INTO t VALUES
    (1, 'apple', 1.25, 10, true, '2024-01-15'),
    (2, 'banana', 0.5, 0, false, '2024-02-29'),
    (3, 'cherry', NULL, 100, true, NULL);
INSERT INTO t (id, name) VALUES (4, 'dürüm ✓');
SELECT * FROM t ORDER BY id;
UPDATE t SET qty = qty + 1 WHERE active;
DELETE FROM t WHERE id = 2;
SELECT id, name, qty FROM t ORDER BY id;
SELECT count(*) AS n, sum(qty) AS total_qty, max(price) AS max_price FROM t;
SELECT name FROM t WHERE id = 42;
\d t
CREATE TABLE kinds (
    id int4 PRIMARY KEY,
    b bool,
    i2 int2,
    i8 int8,
    f4 float4,
    f8 float8,
    vc varchar(20),
    by bytea,
    d date,
    tm time,
    ts timestamp,
    tstz timestamptz,
    iv interval,
    j jsonb
);
\d kinds
INSERT INTO kinds VALUES
    (1, false, -32768, 9223372036854775807, 1.5, -0.25, 'vc', '\x01ff', '1969-12-31',
     '12:34:56', '1969-07-20 20:17:40', NULL, '1 day 02:00:00', '{"a": 1, "b": [1, 2]}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT id, b, i2, i8, f4, f8, vc, by, d, tm, ts, iv, j FROM kinds ORDER BY id;
\x on
SELECT * FROM t WHERE id = 1;
\x off
\copy t FROM 'in.csv' CSV HEADER
SELECT * FROM t ORDER BY id;
\copy t TO 'out.txt'
\copy (SELECT id, name, price FROM t WHERE id >= 4 ORDER BY id) TO 'query.csv' CSV HEADER
\pset format unaligned
\pset tuples_only on
SELECT id, name, qty FROM t ORDER BY id;
SELECT count(*) FROM t;
