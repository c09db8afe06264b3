-- The rewrite of LLM operator calls (sql/rewrite.rs, operators/call.rs): templates
-- resolved to columns, explicit arguments, labels and lists, and misuse explained.

-- Row-wise operators: placeholders become the fields argument.
SELECT title FROM movies WHERE llm_filter('{title} is a classic romance')
SELECT title, llm_map('The country where {title} is mainly set') AS country FROM movies
SELECT llm_score('How family-friendly is {title} ({year})') FROM movies
SELECT llm_map('no fields here') FROM movies
SELECT llm_map('{title} and {title} again') FROM movies
SELECT llm_map('{{literal}} braces and {title}') FROM movies
SELECT LLM_MAP('{title}') FROM movies
SELECT llm_map('it''s {title}') FROM movies

-- Explicit field arguments, qualified names.
SELECT llm_map('Translate {x}', m.title) FROM movies m
SELECT llm_map('Compare {a} with {b}', title, year) FROM movies
SELECT llm_map('{m.title}') FROM movies m
SELECT llm_map('Describe', title, year) FROM movies

-- Labels and lists.
SELECT llm_classify('{review}', 'positive, negative') FROM reviews
SELECT llm_classify('{review}', ['positive', 'negative', 'mixed']) FROM reviews
SELECT llm_classify('{review}', labels) FROM reviews
SELECT llm_reduce('Summarize the reviews', list(review)) FROM reviews
SELECT llm_rank('most romantic first', list(title)) FROM movies WHERE year < 1960
SELECT m.title, llm_reduce('Summarize the reviews of {m.title}', list(r.review_text)) FROM movies m JOIN reviews r USING (movie_id) GROUP BY m.title
SELECT llm_knowledge('Which year did WW2 end?')
SELECT title FROM movies WHERE director = llm_knowledge('Who directed Jaws?')

-- Operators nested in expressions, subqueries and CTEs.
SELECT count(*) FROM movies WHERE NOT llm_filter('{title} is old')
SELECT * FROM (SELECT title FROM movies WHERE llm_filter('{title}')) t
WITH t AS (SELECT title FROM movies) SELECT llm_map('{title}') FROM t
SELECT upper(llm_map('{title}')) FROM movies

-- Misuse is refused with an example.
SELECT llm_filter(title) FROM movies
SELECT llm_filter() FROM movies
SELECT llm_filter FROM movies
SELECT llm_reduce('x') FROM movies
SELECT llm_classify('{title}') FROM movies
SELECT llm_classify('{title}', 'only') FROM movies
SELECT llm_map('{a} and {b}', x) FROM t
SELECT llm_map(DISTINCT '{title}') FROM movies
SELECT llm_map('{title}' ORDER BY title) FROM movies
SELECT llm_map(template => '{title}') FROM movies

-- A schema-qualified function of the same name is not an operator.
SELECT main.llm_map('{title}') FROM movies
