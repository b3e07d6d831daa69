CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW lonely AS SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);
