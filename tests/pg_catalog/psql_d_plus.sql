\d+ reviews
