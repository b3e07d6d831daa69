CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW buyers AS SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);
