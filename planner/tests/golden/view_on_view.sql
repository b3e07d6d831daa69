CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE MATERIALIZED VIEW per_customer AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
EXPLAIN CREATE MATERIALIZED VIEW whales AS SELECT customer_id FROM per_customer WHERE total > 1000;
