CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW firsts AS SELECT DISTINCT ON (customer_id) customer_id, amount FROM orders ORDER BY customer_id, amount;
