-- The cheap-first rewrites around operators: join anchoring (sql/anchors.rs), the
-- CASE guard inside WHERE (sql/guard.rs) and top-k before the select list
-- (sql/topk.rs).

-- Anchoring: a WHERE operator over a join waits for the join's keys.
SELECT m.title FROM movies m JOIN reviews r ON r.movie_id = m.movie_id WHERE m.year < 1960 AND llm_filter('{r.review_text} is negative')
SELECT * FROM movies JOIN reviews USING (movie_id) WHERE llm_filter('{review_text}')
SELECT * FROM a, b WHERE a.id = b.id AND llm_filter('{b.x}')
SELECT * FROM a LEFT JOIN b ON a.id = b.id AND a.k = b.k WHERE llm_filter('{b.x}')
SELECT * FROM (SELECT * FROM movies) m JOIN reviews r ON r.movie_id = m.movie_id WHERE llm_filter('{r.review_text}')
SELECT * FROM movies m WHERE m.movie_id IN (SELECT r.movie_id FROM reviews r JOIN movies x ON x.movie_id = r.movie_id WHERE llm_filter('{r.review_text}'))
-- Nothing to anchor: one table, or the operator outside WHERE.
SELECT title FROM movies WHERE llm_filter('{title}')
SELECT llm_map('{title}') FROM movies m JOIN reviews r USING (movie_id) WHERE llm_filter('{title}')
SELECT llm_map('{r.review_text}') FROM movies m JOIN reviews r USING (movie_id)

-- The guard: operator conjuncts run only where the ordinary ones hold.
SELECT id FROM items WHERE id % 2 = 0 AND llm_filter('{name}') AND kind = 'a'
SELECT id FROM items WHERE (id > 1 AND kind = 'b') AND llm_filter('{name}')
SELECT id FROM items WHERE llm_filter('{name}') AND llm_score('{name}') > 0.5 AND id < 10
-- Nothing to guard.
SELECT id FROM items WHERE llm_filter('{name}')
SELECT id FROM items WHERE id > 1 OR llm_filter('{name}')
SELECT id FROM items WHERE id > 1

-- Top-k: the rows the LIMIT keeps are chosen before the select list runs.
SELECT title, llm_map('Summarize {title}') FROM movies WHERE year > 2000 ORDER BY box_office DESC, title LIMIT 10 OFFSET 5
SELECT title, llm_map('Tagline for {title}') AS tagline FROM movies ORDER BY year LIMIT 3
-- Left alone: the order or the rows depend on the select list.
SELECT llm_score('{title}') AS s FROM movies ORDER BY s DESC LIMIT 3
SELECT title, llm_map('{title}') FROM movies ORDER BY 1 LIMIT 3
SELECT DISTINCT llm_map('{title}') FROM movies ORDER BY title LIMIT 3
SELECT count(*), llm_map('{title}', max(title)) FROM movies ORDER BY 1 LIMIT 3
SELECT title, llm_map('{title}') FROM movies ORDER BY title
SELECT title, llm_map('{title}') FROM movies GROUP BY title ORDER BY title LIMIT 3
SELECT title, llm_map('{title}') FROM movies ORDER BY llm_score('{title}') LIMIT 3
SELECT title, llm_map('{title}') FROM movies ORDER BY year LIMIT 3 + 1
