CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount bigint, status text);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE MATERIALIZED VIEW u AS SELECT * FROM nowhere;
