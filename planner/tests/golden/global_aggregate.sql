CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(amount) AS total FROM orders;
