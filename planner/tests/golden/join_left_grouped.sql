CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW per_region AS SELECT c.region, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.region;
