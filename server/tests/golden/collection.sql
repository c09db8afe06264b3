-- Whole-input collection (sql/collect.rs): the query listing a row-wise operator's
-- distinct inputs before the query runs, or why the shape does not allow one.

-- Accepted shapes.
SELECT title FROM movies WHERE year < 1960 AND llm_filter('{genres} includes comedy')
SELECT title, llm_map('Tagline for {title}') FROM movies WHERE year > 2000 ORDER BY title
SELECT m.title FROM movies m JOIN reviews r ON r.movie_id = m.movie_id WHERE llm_filter('{r.review_text} is negative')
SELECT title FROM movies ORDER BY llm_score('{title}') DESC
SELECT llm_classify('{review_text}', 'positive, negative') FROM reviews
SELECT DISTINCT llm_map('{genres}') FROM movies
SELECT title FROM movies WHERE NOT llm_filter('{title}')
SELECT title FROM movies WHERE llm_score('{title}') > 0.5
SELECT title FROM movies WHERE coalesce(year, 0) > 1990 AND upper(llm_map('{title}')) = 'X'
SELECT title FROM movies, reviews WHERE movies.movie_id = reviews.movie_id AND llm_filter('{review_text}')

-- Declined shapes.
SELECT title, llm_map('{title}') FROM movies ORDER BY year LIMIT 5
SELECT title FROM movies WHERE year < 1960 OR llm_filter('{title}')
SELECT title FROM movies WHERE llm_filter('{title}') AND llm_filter('{genres}')
SELECT genres, count(*) FROM movies WHERE llm_filter('{genres}') GROUP BY genres
SELECT llm_reduce('Summarize', list(title)) FROM movies
SELECT max(llm_score('{title}')) FROM movies
WITH t AS (SELECT * FROM movies) SELECT llm_map('{title}') FROM t
SELECT title FROM movies WHERE CASE WHEN year > 2000 THEN llm_filter('{title}') ELSE false END
SELECT title FROM movies WHERE coalesce(llm_filter('{title}'), false)
SELECT llm_knowledge('capital of France')
SELECT llm_map('{title}') FROM movies UNION SELECT 'x'
SELECT title, row_number() OVER (ORDER BY llm_score('{title}')) FROM movies
SELECT * FROM (SELECT llm_map('{title}') AS m FROM movies) t
SELECT llm_map('{x}') FROM (VALUES ('a')) v(x) WHERE llm_filter('{x}')
SELECT title FROM movies HAVING llm_filter('{title}')
