CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW best AS SELECT * FROM (SELECT id, customer_id, amount, rank() OVER (PARTITION BY customer_id ORDER BY amount DESC) AS r FROM orders) t WHERE r <= 2;
