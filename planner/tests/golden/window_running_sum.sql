CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW running AS SELECT id, customer_id, sum(amount) OVER (PARTITION BY customer_id ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s, lag(amount) OVER (PARTITION BY customer_id ORDER BY id) AS prev FROM orders;
