-- A wide warehouse schema for the schema-linking tests and benchmark: 12 business
-- domains x 25 entities = 300 tables (`<domain>_<entity>`), each with a COMMENT,
-- commented columns, a primary key, a foreign key to the previous entity of its
-- domain (a chain of joins) and 20 rows. bench/src/linking.rs asks questions about
-- it whose gold tables follow from these names.
DO $$
DECLARE
    domains text[] := ARRAY['sales', 'billing', 'logistics', 'inventory', 'marketing', 'support',
        'staffing', 'treasury', 'manufacturing', 'procurement', 'compliance', 'research'];
    entities text[] := ARRAY['accounts', 'contracts', 'invoices', 'payments', 'shipments', 'carriers',
        'warehouses', 'products', 'suppliers', 'employees', 'departments', 'projects', 'campaigns',
        'tickets', 'assets', 'budgets', 'audits', 'licenses', 'vehicles', 'routes', 'batches',
        'machines', 'experiments', 'patents', 'incidents'];
    d text;
    e text;
    previous text;
    t text;
BEGIN
    FOREACH d IN ARRAY domains LOOP
        previous := NULL;
        FOREACH e IN ARRAY entities LOOP
            t := d || '_' || e;
            EXECUTE format(
                'CREATE TABLE %I (id integer PRIMARY KEY, %I text NOT NULL, amount numeric(12, 2), status text, created_on date%s)',
                t, e || '_code',
                CASE WHEN previous IS NULL THEN '' ELSE format(', %I integer REFERENCES %I (id)', previous || '_id', previous) END);
            EXECUTE format('COMMENT ON TABLE %I IS %L', t, format('the %s %s, one row each', d, e));
            EXECUTE format('COMMENT ON COLUMN %I.%I IS %L', t, e || '_code', format('the code of the %s', e));
            EXECUTE format('COMMENT ON COLUMN %I.amount IS %L', t, format('%s amount in EUR', e));
            EXECUTE format('COMMENT ON COLUMN %I.status IS %L', t, 'open, closed or on hold');
            EXECUTE format(
                'INSERT INTO %I SELECT g, %L || g, g * 10.5, (ARRAY[''open'', ''closed'', ''on hold''])[1 + g %% 3], DATE ''2024-01-01'' + g%s FROM generate_series(1, 20) g',
                t, upper(left(e, 3)) || '-',
                CASE WHEN previous IS NULL THEN '' ELSE ', g' END);
            previous := t;
        END LOOP;
    END LOOP;
END $$;
ANALYZE;
