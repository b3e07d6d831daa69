CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
EXPLAIN CREATE MATERIALIZED VIEW per_customer AS SELECT customer_id, count(*) AS n, sum(amount) AS total, max(amount) AS biggest FROM orders GROUP BY customer_id;
