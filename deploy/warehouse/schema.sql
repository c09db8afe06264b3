-- The demo datasets as a PostgreSQL warehouse: tables with keys and COMMENTs (the
-- server reads them as descriptions), and a read-only role for the server. Run by
-- load.sh (tests, compose.yaml), which loads the rows after it. psql variables:
-- reader_password, the password of the role tag_reader.

CREATE TABLE movies (
    movie_id integer PRIMARY KEY,
    title text NOT NULL,
    year integer,
    genres text,
    director text,
    runtime_minutes integer,
    box_office_usd_millions double precision,
    country text
);
COMMENT ON TABLE movies IS 'one row per film';
COMMENT ON COLUMN movies.movie_id IS 'film identifier';
COMMENT ON COLUMN movies.title IS 'film title in English';
COMMENT ON COLUMN movies.year IS 'year of first release';
COMMENT ON COLUMN movies.genres IS 'genres separated by ''|'', e.g. ''Drama|Romance''; match with genres LIKE ''%Romance%''';
COMMENT ON COLUMN movies.director IS 'main director (first credited when several)';
COMMENT ON COLUMN movies.runtime_minutes IS 'running time in minutes';
COMMENT ON COLUMN movies.box_office_usd_millions IS 'approximate worldwide box-office gross in millions of US dollars, not adjusted for inflation';
COMMENT ON COLUMN movies.country IS 'main production country';

CREATE TABLE reviews (
    review_id integer PRIMARY KEY,
    movie_id integer NOT NULL REFERENCES movies (movie_id),
    reviewer text,
    rating integer,
    review_text text
);
COMMENT ON TABLE reviews IS 'short audience reviews, three per film';
COMMENT ON COLUMN reviews.review_id IS 'review identifier';
COMMENT ON COLUMN reviews.movie_id IS 'the reviewed film';
COMMENT ON COLUMN reviews.reviewer IS 'reviewer name';
COMMENT ON COLUMN reviews.rating IS 'stars from 1 (worst) to 5 (best)';
COMMENT ON COLUMN reviews.review_text IS 'the review, one or two sentences';

CREATE TABLE tickets (
    ticket_id integer PRIMARY KEY,
    created_date date,
    resolved_date date,
    product text,
    category text,
    priority text,
    customer_tier text,
    status text,
    request text,
    support_response text,
    satisfaction integer
);
COMMENT ON TABLE tickets IS 'one row per customer support ticket for five products in 2024';
COMMENT ON COLUMN tickets.created_date IS 'date the ticket was opened';
COMMENT ON COLUMN tickets.resolved_date IS 'date the ticket was closed; NULL while open or pending';
COMMENT ON COLUMN tickets.product IS 'the product the ticket is about';
COMMENT ON COLUMN tickets.request IS 'the customer''s request, as written';
COMMENT ON COLUMN tickets.support_response IS 'the support agent''s reply';
COMMENT ON COLUMN tickets.satisfaction IS 'customer rating of the reply from 1 (bad) to 5 (great); NULL when not rated';

-- The server's role: it may read, nothing else (the server never writes, and does
-- not rely on this: it attaches the database read-only and checks every statement).
CREATE ROLE tag_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE tag_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"database" TO tag_reader;
GRANT USAGE ON SCHEMA public TO tag_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tag_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO tag_reader;
