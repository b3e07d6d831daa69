CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW named AS SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON o.customer_id = c.id;
