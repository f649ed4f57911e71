-- Read-only statements of `pgwerk doctor` (catalog and statistics views, the app's tables).
-- Placeholders as in queries.sql (see pgwerk/store/statements.py).

-- name: doctor_server
-- Server settings and connection counts for the connection headroom check.
SELECT current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int AS reserved,
    current_setting('autovacuum') AS autovacuum,
    current_setting('track_counts') AS track_counts,
    current_setting('autovacuum_vacuum_threshold')::int AS vacuum_threshold,
    current_setting('autovacuum_vacuum_scale_factor')::float8 AS vacuum_scale_factor,
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
        AS connections,
    (SELECT count(*) FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND application_name LIKE %(app_name)s)::int
        AS app_connections,
    -- Over a Unix socket inet_server_port() is NULL; the socket's name holds the port.
    coalesce(inet_server_port(), current_setting('port')::int) AS server_port,
    pg_backend_pid() AS pid,
    current_setting('server_version') AS version;

-- name: doctor_backend_pid
-- Asked twice in two transactions: a different answer means a pooler in transaction mode.
SELECT pg_backend_pid() AS pid;

-- name: doctor_pool_mode
-- Answered by PgBouncer-like poolers that intercept it; PostgreSQL itself rejects it.
SHOW pool_mode;

-- name: doctor_indexes
-- The app's indexes by name, with PostgreSQL's word on whether they are usable.
SELECT c.relname AS name, i.indisvalid AS valid, i.indisready AS ready
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(names)s::text[]);

-- name: doctor_tables
-- Size, live and dead rows, vacuum history and options of the app's tables.
SELECT s.relname AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,
    s.last_vacuum, s.last_autovacuum, s.autovacuum_count,
    pg_relation_size(s.relid) AS table_bytes, pg_indexes_size(s.relid) AS index_bytes,
    (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid)::int AS indexes,
    coalesce(c.reloptions, '{{}}') AS options,
    (SELECT sum(st.avg_width) FROM pg_stats st
     WHERE st.schemaname = s.schemaname AND st.tablename = s.relname)::int AS row_width
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = %(schema)s AND s.relname = ANY(%(tables)s::text[])
ORDER BY s.relname;

-- name: doctor_workers
-- Registered workers: live ones (heartbeat within two intervals) and silent ones.
SELECT id, queues, concurrency, extract(epoch FROM now() - heartbeat_at)::float8 AS age,
    heartbeat_at >= now() - make_interval(secs => 2 * heartbeat_interval + 1) AS live
FROM {workers} ORDER BY started_at, id;

-- name: doctor_stuck_active
-- Running jobs whose worker is gone or silent: only a sweep puts them back.
SELECT count(*)::int AS count, (array_agg(j.id ORDER BY j.id))[1:10] AS ids,
    extract(epoch FROM now() - min(j.started_at))::float8 AS oldest
FROM {jobs} j
LEFT JOIN {workers} w ON w.id = j.worker_id
WHERE j.status IN ('active', 'aborting')
  AND (w.id IS NULL
       OR w.heartbeat_at < now() - make_interval(secs => 2 * w.heartbeat_interval + 1));

-- name: doctor_queued
-- Per queue: runnable jobs and how long the oldest has waited.
SELECT queue, count(*)::int AS count,
    extract(epoch FROM now() - min(scheduled_at))::float8 AS oldest
FROM {jobs}
WHERE status = 'queued'
GROUP BY queue ORDER BY oldest DESC;

-- name: doctor_overdue
-- Per queue: scheduled jobs still not queued %(grace)s seconds after their time.
SELECT queue, count(*)::int AS count,
    extract(epoch FROM now() - min(scheduled_at))::float8 AS late
FROM {jobs}
WHERE status = 'scheduled' AND scheduled_at < now() - make_interval(secs => %(grace)s)
GROUP BY queue ORDER BY late DESC;

-- name: doctor_cron_leader
-- The server process holding the cron scheduler's session lock (none: no scheduler runs).
-- A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
SELECT l.pid FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = (%(lock)s::bigint >> 32)::oid AND l.objid = (%(lock)s::bigint & 4294967295)::oid;

-- name: doctor_cron_schedules
-- Stored schedules that are not paused, and how late the latest next tick is.
SELECT count(*)::int AS active,
    extract(epoch FROM now() - min(next_tick))::float8 AS late
FROM {cron} WHERE NOT paused;
