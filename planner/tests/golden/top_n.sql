CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW top3 AS SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 3 OFFSET 1;
