-- The allow-list fuzzer's corpus (tests/allow_list_fuzz.rs): statements the checker
-- accepted, replayed on every run; `@` stands for the watched folder, `\n` for a
-- new line. `TAG_FUZZ_SAVE=1` appends accepted statements with a feature (a word or
-- punctuation mark) none of these has.
SELECT title FROM movies WHERE year > 1990 ORDER BY 1 LIMIT 3
SELECT * FROM range(3) t(x)
SELECT table_name FROM duckdb_tables()
WITH c AS (SELECT 1 AS x), d AS (SELECT * FROM c) SELECT * FROM d
SELECT list_transform([1, 2], x -> x * 2)
SELECT '@/canary.csv'
SELECT llm_filter('{title} is a classic') FROM movies
SELECT llm_map('{secret}') FROM movies
SELECT 1 -- ; DROP TABLE movies
SELECT 1 /* ; */
VALUES ((SELECT list_transform([1, 2], x -> '@/canary.csv') FROM memory.main.movies LIMIT 1)) /* ; */
WITH c AS (SELECT coalesce(), list_transform([1, 2], x -> CAST('x'::VARCHAR AS VARCHAR)) FROM generate_series(1, 2) QUALIFY true) SELECT list_transform([1, 2], x -> '@/canary.csv'), 'x'::VARCHAR FROM unnest([1, 2]) u(x) WHERE llm_map('{title}') /* ; */
VALUES (EXISTS (SELECT 1 FROM main.movies))/* a */ 
(SELECT nextval('@/canary.csv')) EXCEPT (SELECT CASE WHEN title THEN 1475 ELSE NULL END, coalesce(genres) FROM main.movies ORDER BY 1 DESC LIMIT 2)
VALUES (llm_score('{title} ({year})'))\n-- line\n
VALUES (EXISTS (SELECT 1 FROM duckdb_columns()))\n-- line\n
VALUES (llm_score('{title} ({year})')) -- note; WITH c AS (WITH c AS (SELECT postgres_query('@/canary.csv')), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT CAST(list_transform([1, 2], x -> {'k': 1}) AS VARCHAR) FROM glob('@/*') WHERE (list_transform([1, 2], x -> secret) LIKE count(llm_reduce('sum up', list(title))))) e) SELECT llm_classify('{title}', 'a, b') FROM read_text('@/canary.csv')
SELECT * FROM (SELECT abs(CASE WHEN genres THEN year ELSE NULL END) FROM (SELECT 1 AS x)) s -- note
SELECT * FROM duckdb_columns() WHERE (SELECT llm_map('{title}') FROM (VALUES (1), (2)) v(x) LIMIT 1) ; 
VALUES (EXISTS (SELECT 1 FROM pg_catalog.pg_class))
VALUES ((genres + '@/canary.csv')) -- note; FROM information_schema.tables SELECT md5('x'::VARCHAR)
FROM information_schema.tables SELECT CAST(CASE WHEN '@/canary.csv' THEN true ELSE NULL END AS VARCHAR)/* a */ 
SELECT * FROM (SELECT llm_map('{secret}'), (EXISTS (SELECT 1 FROM duckdb_columns()) + range()) FROM (SELECT 1 AS x) WHERE length((SELECT '@/canary.csv' FROM main.movies LIMIT 1)) ORDER BY 1) s\n-- line\n
SELECT CAST(CAST(NULL AS VARCHAR) AS VARCHAR), list_transform([1, 2], x -> '@/canary.csv') FROM movies ORDER BY 1 -- note; SELECT ((SELECT genres FROM movies LIMIT 1) = (SELECT '@/canary.csv' FROM (SELECT 1 AS x) LIMIT 1)) FROM parquet_metadata('@/canary.parquet') GROUP BY ALL
FROM memory.main.movies SELECT length(llm_rank('best', list(title)), llm_score('{title} ({year})'))
SELECT * FROM (SELECT * FROM unnest([1, 2]) u(x) WHERE (EXISTS (SELECT 1 FROM reviews r) AND CASE WHEN '@/canary.csv' THEN m.title ELSE NULL END) LIMIT 3) s ; 
WITH c AS ((SELECT (SELECT secret FROM reviews r LIMIT 1) FROM movies ORDER BY 1) UNION ALL (SELECT * FROM generate_series(1, 2) QUALIFY true)) VALUES (CAST(list_transform([1, 2], x -> '@/canary.csv') AS VARCHAR)) ; 
FROM movies m SELECT CAST(llm_map('{title}') AS VARCHAR) -- note; WITH c AS (SELECT list_transform([1, 2], x -> (m.title < content)), regexp_matches() FROM '@/canary.csv' AS f(secret)), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT * FROM sniff_csv('@/canary.csv')) e
VALUES (length(('@/canary.csv' AND '@/canary.csv'), '@/canary.csv')) -- note; INSTALL httpfs
WITH c AS (SELECT * FROM range(3) t(x) WHERE EXISTS (SELECT 1 FROM information_schema.tables) ORDER BY 1 DESC LIMIT 2), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT llm_reduce('sum up', list(title)), CASE WHEN EXISTS (SELECT 1 FROM movies) THEN movie_id ELSE NULL END FROM duckdb_columns() GROUP BY ALL) e ; 
SELECT * FROM (SELECT EXISTS (SELECT 1 FROM movies m), CASE WHEN NULL THEN '@/canary.csv' ELSE NULL END FROM duckdb_views()) s
VALUES ((SELECT CAST([1, 2] AS VARCHAR) FROM movies LIMIT 1)) -- note; WITH c AS (SELECT llm_reduce('sum up', list(title)), sqlite_attach() FROM range(3) t(x) LIMIT 3) SELECT CASE WHEN 1911 THEN EXISTS (SELECT 1 FROM movies m) ELSE NULL END, CAST((SELECT 2689 FROM c.t LIMIT 1) AS VARCHAR) FROM (VALUES (1), (2)) v(x)
VALUES (CAST(llm_knowledge('capital of France') AS VARCHAR)) ; 
VALUES (CASE WHEN CASE WHEN genres THEN movie_id ELSE NULL END THEN ([1, 2] < '@/canary.csv') ELSE NULL END) -- note; WITH d AS (DELETE FROM movies RETURNING *) SELECT * FROM duckdb_tables()
VALUES (string_agg());
FROM unnest([1, 2]) u(x) SELECT random((SELECT x FROM generate_series(1, 2) LIMIT 1)) /* ; */
WITH c AS (SELECT EXISTS (SELECT 1 FROM movies m) FROM (FROM movies SELECT title) WHERE unnest(llm_classify('{title}', 'a, b'), llm_filter('{title} is a classic')) LIMIT 3) FROM duckdb_columns() SELECT CASE WHEN hash() THEN EXISTS (SELECT 1 FROM information_schema.tables) ELSE NULL END -- note; SELECT * FROM (SELECT checkpoint(EXISTS (SELECT 1 FROM duckdb_tables())), CAST(llm_knowledge('capital of France') AS VARCHAR) FROM read_csv('@/canary.csv')) s
VALUES (generate_series(llm_map('{secret}'))) -- note; (SELECT read_blob('@/canary.csv')) UNION (SELECT ('@/canary.csv' OR title), (SELECT list_transform([1, 2], x -> CAST('@/canary.csv' AS VARCHAR)) FROM duckdb_views() LIMIT 1) FROM query('SELECT * FROM ''@/canary.csv''') WHERE (SELECT (SELECT x FROM generate_series(1, 2) LIMIT 1) FROM duckdb_secrets() LIMIT 1))
VALUES (list_value()) /* ; */
WITH c AS (SELECT * FROM (FROM movies SELECT title) WHERE version(genres, CASE WHEN list_transform([1, 2], x -> '@/canary.csv') THEN typeof(genres) ELSE NULL END)), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT length(210) FROM generate_series(1, 2) WHERE list_transform([1, 2], x -> '@/canary.csv')) e ; 
FROM generate_series(1, 2) SELECT CASE WHEN 1795 THEN (SELECT DATE '2020-01-01' FROM duckdb_tables() LIMIT 1) ELSE NULL END -- note; DELETE FROM movies
VALUES (('@/canary.csv' || CASE WHEN EXISTS (SELECT 1 FROM main.movies) THEN 1181 ELSE NULL END))
SELECT current_schemas('@/canary.csv') -- note
VALUES ((abs(true, [1, 2]) = CAST(245 AS VARCHAR)))\n-- line\n
WITH c AS (SELECT * FROM memory.main.movies QUALIFY true), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT current_setting('@/canary.csv')) e -- note
WITH c AS (SELECT setseed('@/canary.csv')), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT (CASE WHEN m.title THEN 2532 ELSE NULL END LIKE (NULL || 1169)), md5((movie_id + CASE WHEN 387 THEN '@/canary.csv' ELSE NULL END)) FROM information_schema.tables WHERE (NULL LIKE genres)) e -- note
SELECT * FROM (SELECT list_transform([1, 2], x -> EXISTS (SELECT 1 FROM generate_series(1, 2))), (SELECT CAST(content AS VARCHAR) FROM generate_series(1, 2) LIMIT 1) FROM information_schema.tables) s -- note; SELECT * FROM ((SELECT * FROM duckdb_settings()) EXCEPT (SELECT txid_current('@/canary.csv'))) s
((SELECT upper(CASE WHEN content THEN 1721 ELSE NULL END), (SELECT 'a' FROM duckdb_columns() LIMIT 1) FROM movies m WHERE list_transform([1, 2], x -> list_transform([1, 2], x -> '@/canary.csv'))) UNION ALL (SELECT * FROM main.movies WHERE CAST(list_transform([1, 2], x -> content) AS VARCHAR) ORDER BY 1)) INTERSECT (SELECT CAST(1 AS VARCHAR) FROM duckdb_views() ORDER BY 1 DESC LIMIT 2)\n-- line\n
(SELECT random(secret) FROM generate_series(1, 2)) INTERSECT (SELECT EXISTS (SELECT 1 FROM main.movies), CASE WHEN EXISTS (SELECT 1 FROM movies) THEN '@/canary.csv' ELSE NULL END FROM main.movies WHERE CAST(content AS VARCHAR)) -- note; CREATE VIEW v AS (SELECT (list_transform([1, 2], x -> '@/canary.csv') LIKE '@/canary.csv') FROM duckdb_extensions()) UNION (SELECT * FROM (SELECT EXISTS (SELECT 1 FROM (VALUES (1), (2)) v(x)) FROM sqlite_scan('@/canary.duckdb', 't') WHERE EXISTS (SELECT 1 FROM unnest([1, 2]) u(x))) s)
VALUES (CAST(max() AS VARCHAR));
(SELECT list_transform([1, 2], x -> max()), list_transform([1, 2], x -> secret) FROM reviews WHERE unnest('@/canary.csv', movie_id)) INTERSECT (FROM (SELECT 1 AS x) SELECT range({'k': 1}, (SELECT 'x'::VARCHAR FROM memory.main.movies LIMIT 1))) -- note
WITH c AS (SELECT CASE WHEN (SELECT x FROM (SELECT 1 AS x) LIMIT 1) THEN string_agg() ELSE NULL END FROM reviews WHERE CAST(CASE WHEN '@/canary.csv' THEN '@/canary.csv' ELSE NULL END AS VARCHAR)), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT list_transform([1, 2], x -> list_transform([1, 2], x -> '@/canary.csv')) FROM memory.main.movies LIMIT 3) e -- note; PIVOT movies ON year USING count(*)
VALUES (list_transform([1, 2], x -> typeof())) -- note; SELECT * FROM (SELECT CASE WHEN CAST('@/canary.csv' AS VARCHAR) THEN 853 ELSE NULL END FROM duckdb_views() WHERE llm_map('x {title}', getenv('HOME'))) s
VALUES ((('@/canary.csv' + title) < llm_score('{title} ({year})'))) -- note; WITH c AS ((SELECT (SELECT (SELECT '@/canary.csv' FROM generate_series(1, 2) LIMIT 1) FROM read_parquet('@/canary.parquet') LIMIT 1) FROM memory.main.movies WHERE CASE WHEN '@/canary.csv' THEN (SELECT 1 FROM information_schema.tables LIMIT 1) ELSE NULL END LIMIT 3) INTERSECT (SELECT CAST(CAST(content AS VARCHAR) AS VARCHAR) FROM information_schema.tables QUALIFY true)) SELECT * FROM query('SELECT * FROM ''@/canary.csv''')
(SELECT CASE WHEN EXISTS (SELECT 1 FROM reviews) THEN (1 OR year) ELSE NULL END, CAST(CAST(2732 AS VARCHAR) AS VARCHAR) FROM main.movies QUALIFY true) EXCEPT (SELECT CAST(secret AS VARCHAR), CASE WHEN CASE WHEN DATE '2020-01-01' THEN '@/canary.csv' ELSE NULL END THEN CAST('@/canary.csv' AS VARCHAR) ELSE NULL END FROM pg_catalog.pg_class WHERE CAST(llm_map('{secret}') AS VARCHAR)) -- note; IMPORT DATABASE '@'
FROM main.movies SELECT list_transform([1, 2], x -> year) -- note; WITH c AS (SELECT * FROM duckdb_databases()), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT CASE WHEN 1146 THEN list_transform([1, 2], x -> [1, 2]) ELSE NULL END FROM movies) e
WITH c AS (SELECT ((705 = '@/canary.csv') < lower(NULL, '@/canary.csv')), llm_score('{title} ({year})') FROM duckdb_columns() WHERE (SELECT CASE WHEN 656 THEN '@/canary.csv' ELSE NULL END FROM movies m LIMIT 1)) (SELECT * FROM information_schema.tables WHERE (SELECT title FROM range(3) t(x) LIMIT 1)) INTERSECT (SELECT list_transform([1, 2], x -> EXISTS (SELECT 1 FROM reviews)) FROM duckdb_views())/* a */ 
VALUES (CASE WHEN list_transform([1, 2], x -> true) THEN DATE '2020-01-01' ELSE NULL END) -- note; PRAGMA database_list
SELECT (SELECT (NULL < NULL) FROM reviews LIMIT 1), CAST(1681 AS VARCHAR) FROM memory.main.movies ORDER BY 1 DESC LIMIT 2 -- note; WITH c AS (WITH c AS (SELECT * FROM "@/canary.duckdb"), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT (count() OR EXISTS (SELECT 1 FROM (VALUES (1), (2)) v(x))), EXISTS (SELECT 1 FROM information_schema.tables) FROM range(3) t(x)) e), d AS (SELECT * FROM c) SELECT * FROM d, (WITH c AS (SELECT checkpoint('@/canary.csv')) SELECT llm_map('{title}'), EXISTS (SELECT 1 FROM duckdb_tables()) FROM generate_series(1, 2) WHERE ('@/canary.csv' AND year) GROUP BY ALL) e
FROM unnest([1, 2]) u(x) SELECT llm_reduce('sum up', list(title)) -- note; DESCRIBE movies
VALUES (llm_map('{secret}')) -- note; (SELECT EXISTS (SELECT 1 FROM "@/canary.duckdb") FROM "@/canary.csv" WHERE CAST(('@/canary.csv' = '@/canary.csv') AS VARCHAR)) EXCEPT ((SELECT CASE WHEN current_database(year) THEN '@/canary.csv' ELSE NULL END, EXISTS (SELECT 1 FROM reviews) FROM reviews r) INTERSECT (SELECT list_transform([1, 2], x -> llm_score('{title} ({year})')) FROM duckdb_columns() WHERE (SELECT llm_map('x {title}', getenv('HOME')) FROM main.movies LIMIT 1)))
SELECT * FROM (SELECT version(CAST(1197 AS VARCHAR), coalesce()), llm_classify('{title}', 'a, b') FROM movies m) s -- note; SELECT * FROM (SELECT * FROM (SELECT * FROM movies AS OF now()) s) s
WITH c AS (FROM movies m SELECT list_transform([1, 2], x -> generate_series(movie_id, 549))) SELECT * FROM (SELECT CAST(EXISTS (SELECT 1 FROM generate_series(1, 2)) AS VARCHAR) FROM movies WHERE list_transform([1, 2], x -> genres) LIMIT 3) s -- note; FROM information_schema.tables SELECT CASE WHEN (SELECT 'a' FROM query_table('movies') LIMIT 1) THEN llm_score('{title} ({year})') ELSE NULL END
FROM (FROM movies SELECT title) SELECT (SELECT NULL FROM movies m LIMIT 1) -- note; COPY movies TO '@/out.parquet' (FORMAT parquet)
(SELECT * FROM reviews WHERE pg_typeof({'k': 1}, '@/canary.csv')) UNION ALL (SELECT current_setting('@/canary.csv')) ; 
VALUES (CAST(55 AS VARCHAR)) -- note; CALL pragma_version()
VALUES (CASE WHEN '@/canary.csv' THEN '@/canary.csv' ELSE NULL END) -- note; SELECT * FROM (SELECT load_extension('@/canary.csv')) s
VALUES (('@/canary.csv' = '@/canary.csv')) -- note; ALTER TABLE movies RENAME TO films
VALUES (CAST(543 AS VARCHAR)) -- note; SELECT * INTO t FROM movies
VALUES (('@/canary.csv' OR EXISTS (SELECT 1 FROM movies))) -- note; PRAGMA enable_profiling
SELECT * FROM (SELECT * FROM unnest([1, 2]) u(x)) s -- note; INSERT INTO movies VALUES (CAST(EXISTS (SELECT 1 FROM '@/canary.csv') AS VARCHAR))
WITH c AS (SELECT nextval('@/canary.csv')), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT CASE WHEN llm_knowledge('capital of France') THEN CASE WHEN movie_id THEN list_value(genres) ELSE NULL END ELSE NULL END, EXISTS (SELECT 1 FROM memory.main.movies) FROM memory.main.movies) e -- note; CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')
VALUES ((SELECT '@/canary.csv' FROM memory.main.movies LIMIT 1)) -- note; WITH d AS (DELETE FROM movies RETURNING *) SELECT (which_secret() < CAST(952 AS VARCHAR)) FROM memory.main.movies ORDER BY 1 DESC LIMIT 2
FROM movies m SELECT CASE WHEN EXISTS (SELECT 1 FROM reviews r) THEN list_transform([1, 2], x -> upper('@/canary.csv')) ELSE NULL END -- note; ATTACH '@/canary.duckdb' AS c (READ_ONLY); SELECT * FROM c.t
VALUES (version()) -- note; TRUNCATE movies
VALUES (count(CAST(136 AS VARCHAR))) -- note; (SELECT force_checkpoint('@/canary.csv')) INTERSECT (SELECT llm_knowledge('capital of France') FROM sqlite_scan('@/canary.duckdb', 't') WHERE (SELECT (x AND 'a') FROM range(3) t(x) LIMIT 1))
SELECT * FROM (SELECT current_setting('@/canary.csv')) s -- note; CREATE MACRO m(x) AS x + 1
FROM duckdb_tables() SELECT CAST(list_transform([1, 2], x -> '@/canary.csv') AS VARCHAR) -- note; LOAD '@/canary.csv'
WITH c AS (SELECT * FROM (SELECT (SELECT pg_typeof() FROM movies m LIMIT 1), (SELECT list_transform([1, 2], x -> title) FROM range(3) t(x) LIMIT 1) FROM range(3) t(x) GROUP BY ALL) s), d AS (SELECT * FROM c) SELECT * FROM d, (VALUES (CAST(CAST(title AS VARCHAR) AS VARCHAR))) e -- note; RESET threads
VALUES (llm_knowledge('capital of France')) -- note; SET threads = 1
WITH c AS (SELECT * FROM pg_catalog.pg_class), d AS (SELECT * FROM c) SELECT * FROM d, (SELECT llm_reduce('sum up', list(title)), CASE WHEN list_transform([1, 2], x -> title) THEN list_transform([1, 2], x -> 1) ELSE NULL END FROM range(3) t(x) LIMIT 3) e -- note; (VALUES (list_transform([1, 2], x -> random(2194)))) UNION ALL (SELECT * FROM (SELECT list_transform([1, 2], x -> (SELECT '@/canary.csv' FROM (SELECT 1 AS x) LIMIT 1)), CAST((SELECT '@/canary.csv' FROM pragma_table_info('movies') LIMIT 1) AS VARCHAR) FROM main.movies) s)
(SELECT * FROM duckdb_tables()) UNION (SELECT * FROM reviews WHERE CAST(year AS VARCHAR) GROUP BY ALL) -- note; CREATE OR REPLACE MACRO llm_map(q, t, f) AS getenv('HOME')
VALUES ((SELECT (1 = 1) FROM movies m LIMIT 1)) -- note; WITH c AS (SELECT * FROM range(3) t(x) WHERE md5()) (SELECT llm_reduce('sum up', list(title)), llm_filter('{title} is a classic') FROM "@/canary.duckdb" WHERE CAST(EXISTS (SELECT 1 FROM read_csv_auto('@/canary.csv')) AS VARCHAR)) UNION (SELECT * FROM sniff_csv('@/canary.csv'))
WITH c AS (SELECT md5(NULL) FROM range(3) t(x) GROUP BY ALL) SELECT CAST(secret AS VARCHAR) FROM generate_series(1, 2) WHERE llm_score('{title} ({year})') GROUP BY ALL -- note; EXPORT DATABASE '@/exp'
FROM unnest([1, 2]) u(x) SELECT CAST(('@/canary.csv' || content) AS VARCHAR) -- note; EXPLAIN WITH c AS (SELECT * FROM read_parquet('@/canary.parquet')) SELECT txid_current('@/canary.csv')
(SELECT * FROM pg_catalog.pg_class) UNION (SELECT txid_current('@/canary.csv')) -- note; DETACH memory
VALUES (llm_rank('best', list(title))) -- note; USE system
SELECT * FROM (SELECT CAST((1872 < '@/canary.csv') AS VARCHAR), CAST(1 AS VARCHAR) FROM (SELECT 1 AS x) ORDER BY 1) s -- note; FROM read_json_auto('@/canary.csv') SELECT CASE WHEN EXISTS (SELECT 1 FROM reviews r) THEN year ELSE NULL END
SELECT * FROM (SELECT CAST((SELECT list_transform([1, 2], x -> movie_id) FROM movies LIMIT 1) AS VARCHAR) FROM range(3) t(x) GROUP BY ALL) s -- note; SET enable_external_access = false
WITH c AS (SELECT * FROM reviews QUALIFY true) SELECT (llm_filter('{title} is a classic') + '@/canary.csv') FROM movies -- note; UPDATE movies SET year = 1
FROM main.movies SELECT EXISTS (SELECT 1 FROM c.t) -- note; (SELECT read_text('@/canary.csv')) UNION ALL (WITH c AS (SELECT CAST((SELECT title FROM parquet_scan('@/canary.parquet') LIMIT 1) AS VARCHAR), EXISTS (SELECT 1 FROM read_json_auto('@/canary.csv')) FROM memory.main.movies QUALIFY true) SELECT (content < (SELECT '@/canary.csv' FROM "@/canary.csv" LIMIT 1)), EXISTS (SELECT 1 FROM reviews r) FROM duckdb_extensions() WHERE EXISTS (SELECT 1 FROM duckdb_columns()))
VALUES (list_transform([1, 2], x -> CAST('@/canary.csv' AS VARCHAR))) -- note; EXPLAIN ANALYZE WITH d AS (DELETE FROM movies RETURNING *) SELECT (SELECT 2652 FROM duckdb_columns() LIMIT 1), CASE WHEN (SELECT 2794 FROM sqlite_scan('@/canary.duckdb', 't') LIMIT 1) THEN list_transform([1, 2], x -> title) ELSE NULL END FROM reviews WHERE (EXISTS (SELECT 1 FROM reviews r) < EXISTS (SELECT 1 FROM duckdb_secrets())) LIMIT 3
SELECT * FROM (SELECT list_transform([1, 2], x -> ('@/canary.csv' < year)), (SELECT CASE WHEN x THEN '@/canary.csv' ELSE NULL END FROM (VALUES (1), (2)) v(x) LIMIT 1) FROM main.movies WHERE llm_classify('{title}', 'a, b')) s -- note; ATTACH '@/new.duckdb' AS n
SELECT * FROM (VALUES (llm_reduce('sum up', list(title)))) s -- note; SUMMARIZE WITH d AS (DELETE FROM movies RETURNING *) SELECT * FROM pragma_table_info('movies')
WITH c AS (SELECT CASE WHEN llm_score('{title} ({year})') THEN (1326 OR 263) ELSE NULL END, llm_classify('{title}', 'a, b') FROM duckdb_columns() WHERE CAST(year AS VARCHAR)), d AS (SELECT * FROM c) SELECT * FROM d, (FROM (VALUES (1), (2)) v(x) SELECT CASE WHEN content THEN '@/canary.csv' ELSE NULL END) e -- note; CREATE SEQUENCE s
FROM range(3) t(x) SELECT [1, 2];
FROM (SELECT 1 AS x) SELECT {'k': 1};
