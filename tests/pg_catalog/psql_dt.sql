\dt
