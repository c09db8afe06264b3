\d movies
\d reviews
