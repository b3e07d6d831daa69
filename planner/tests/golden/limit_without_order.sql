CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW some AS SELECT id FROM orders LIMIT 3;
