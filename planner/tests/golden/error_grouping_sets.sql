CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE MATERIALIZED VIEW cube AS SELECT customer_id, status, count(*) FROM orders GROUP BY ROLLUP (customer_id, status);
