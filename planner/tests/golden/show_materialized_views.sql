CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint);
CREATE MATERIALIZED VIEW b_totals AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
CREATE MATERIALIZED VIEW a_big AS SELECT id FROM orders WHERE amount > 10;
SHOW MATERIALIZED VIEWS;
