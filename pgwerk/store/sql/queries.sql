-- Every statement pgwerk runs, one named block each (noun first, so related statements
-- sort together). Table names are placeholders composed for the app (see
-- pgwerk/store/statements.py); parameters are psycopg's %(name)s.
-- Notices of ended jobs ('d:' and their ids) name at most 300 ids: PostgreSQL refuses a
-- payload over 8,000 bytes. Past that, 'd:*' tells every waiter to look again.
-- CTEs that only send notices are joined into the final SELECT (count(*)) so that they
-- run: PostgreSQL skips a data-modifying-free CTE nobody reads.
-- Durations read from a job row are capped at ten years (least(..., 315576000)), the
-- most the API accepts: a row written by hand or by another version must not make a
-- statement fail on an interval out of range (for the sweep: on every pass).
-- The terminal statuses are: 'complete', 'failed', 'aborted', 'expired'.

-- name: job_insert
-- Insert a batch of jobs; one row per input, in input order, with what the database
-- decided (id, status, times); a NULL id where the key already existed.
-- Wakes idle workers with one notification per queue that got a runnable job.
WITH src AS (
    SELECT nextval({jobs_id_seq_regclass}) AS id, s.*
    FROM {source}
),
ins AS (
    INSERT INTO {jobs} AS j (id, function, queue, status, priority, payload, max_attempts,
        retry_intervals, scheduled_at, expires_at, key, group_key, meta, timeout, heartbeat,
        result_ttl, failure_ttl, failure_mode, callbacks, repeat, error, completed_at, purge_at,
        batch_id)
    SELECT id, function, queue,
        CASE WHEN dep_error IS NOT NULL THEN 'failed'
             WHEN waiting THEN 'waiting'
             WHEN coalesce(at, now() + make_interval(secs => coalesce(delay, 0))) > now()
                 THEN 'scheduled'
             ELSE 'queued' END,
        priority, payload, max_attempts, retry_intervals::jsonb,
        coalesce(at, now() + make_interval(secs => coalesce(delay, 0))),
        now() + make_interval(secs => ttl),
        key, group_key, meta::jsonb, timeout, heartbeat, result_ttl, failure_ttl, failure_mode,
        callbacks::jsonb, repeat::jsonb, dep_error,
        CASE WHEN dep_error IS NOT NULL THEN now() END,
        CASE WHEN dep_error IS NOT NULL THEN now() + make_interval(secs => failure_ttl) END,
        batch_id
    FROM src ORDER BY ord
    ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
    RETURNING j.id, j.status, j.queue, j.scheduled_at, j.enqueued_at, j.expires_at, j.completed_at,
        j.error
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE status = 'queued') AS q
)
SELECT ins.* FROM src
LEFT JOIN ins ON ins.id = src.id
CROSS JOIN (SELECT count(*) FROM wake) AS w
ORDER BY src.ord;

-- name: job_insert_one
-- Insert one job: the common enqueue, as job_insert does for a batch (keep the two in
-- step) but with scalar parameters, no id drawn in advance and no join back to the input,
-- which makes it much cheaper for both sides. No row when the key already existed.
WITH v AS (
    SELECT coalesce(%(at)s::timestamptz,
                    now() + make_interval(secs => coalesce(%(delay)s::float8, 0))) AS run_at
),
ins AS (
    INSERT INTO {jobs} AS j (function, queue, status, priority, payload, max_attempts,
        retry_intervals, scheduled_at, expires_at, key, group_key, meta, timeout, heartbeat,
        result_ttl, failure_ttl, failure_mode, callbacks, repeat, error, completed_at, purge_at,
        batch_id)
    SELECT %(function)s::text, %(queue)s::text,
        CASE WHEN %(dep_error)s::text IS NOT NULL THEN 'failed'
             WHEN %(waiting)s::bool THEN 'waiting'
             WHEN v.run_at > now() THEN 'scheduled'
             ELSE 'queued' END,
        %(priority)s::int, %(payload)s::text, %(max_attempts)s::int,
        %(retry_intervals)s::jsonb, v.run_at, now() + make_interval(secs => %(ttl)s::float8),
        %(key)s::text, %(group_key)s::text, %(meta)s::jsonb, %(timeout)s::float8,
        %(heartbeat)s::float8, %(result_ttl)s::float8, %(failure_ttl)s::float8,
        %(failure_mode)s::text, %(callbacks)s::jsonb, %(repeat)s::jsonb, %(dep_error)s::text,
        CASE WHEN %(dep_error)s::text IS NOT NULL THEN now() END,
        CASE WHEN %(dep_error)s::text IS NOT NULL
             THEN now() + make_interval(secs => %(failure_ttl)s::float8) END,
        %(batch_id)s::bigint
    FROM v
    ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
    RETURNING j.id, j.status, j.queue, j.scheduled_at, j.enqueued_at, j.expires_at, j.completed_at,
        j.error
)
-- The notice in the select list: evaluated for the one row, without a join.
SELECT ins.*, CASE WHEN ins.status = 'queued' THEN pg_notify(%(channel)s, 'q:' || ins.queue)
              END AS woken
FROM ins;

-- name: job_insert_plain
-- job_insert_one for a job enqueued without options, the most common enqueue: only the
-- function and the payload are parameters. Everything else is the app's defaults for such
-- a job (the row of options.plain_template), composed into the statement once as
-- constants: two parameters to send instead of 23, and nothing
-- to decide (a job without options is queued at once). `enqueued_at` is also its
-- scheduled_at and the start of its ttl. A test checks it writes what job_insert_one does.
WITH ins AS (
    INSERT INTO {jobs} (function, payload, queue, status, priority, max_attempts,
        retry_intervals, scheduled_at, expires_at, timeout, heartbeat, result_ttl,
        failure_ttl, failure_mode)
    VALUES (%s::text, %s::text, {queue}, 'queued', {priority}, {max_attempts},
        {retry_intervals}::jsonb, now(), now() + make_interval(secs => {ttl}::float8),
        {timeout}::float8, {heartbeat}::float8, {result_ttl}::float8, {failure_ttl}::float8,
        {failure_mode})
    RETURNING id, enqueued_at, expires_at
)
SELECT ins.id, ins.enqueued_at, ins.expires_at, pg_notify({channel}, {notice}) AS woken
FROM ins;

-- name: job_insert_plain_many
-- job_insert_plain for many jobs (enqueue_many of jobs without options): the functions and
-- the payloads as two arrays, the rest constants. Ids come from the sequence in input
-- order, so the ids returned, in ascending order, are the jobs in input order. One row:
-- the ids, the moment (enqueued_at and scheduled_at of every job) and the expiry, and one
-- notice for the queue.
WITH ins AS (
    INSERT INTO {jobs} (function, payload, queue, status, priority, max_attempts,
        retry_intervals, scheduled_at, expires_at, timeout, heartbeat, result_ttl,
        failure_ttl, failure_mode)
    SELECT u.function, u.payload, {queue}, 'queued', {priority}, {max_attempts},
        {retry_intervals}::jsonb, now(), now() + make_interval(secs => {ttl}::float8),
        {timeout}::float8, {heartbeat}::float8, {result_ttl}::float8, {failure_ttl}::float8,
        {failure_mode}
    FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(function, payload, ord)
    ORDER BY u.ord
    RETURNING id
)
SELECT array_agg(ins.id ORDER BY ins.id) AS ids, now() AS enqueued_at,
    now() + make_interval(secs => {ttl}::float8) AS expires_at,
    pg_notify({channel}, {notice}) AS woken
FROM ins;

-- name: job_insert_unique
-- job_insert for a batch with unique jobs (_unique); the other jobs of the batch come
-- through as job_insert would write them. A unique job's key is the key it asks for plus,
-- with a period, the bucket of now() on the database's clock; the partial unique index
-- holds each key once among the rows in their key's statuses. One row per input, in input
-- order: the whole job row with `existing` false for a job written, true for the job that
-- holds the key (an earlier one of this batch, or one already there); NULLs where a _key
-- was taken, or where a key's holder was committed by another transaction after this
-- statement began, so it cannot see it (`wanted_key` says which key to look up again).
WITH src AS (
    SELECT nextval({jobs_id_seq_regclass}) AS id, s.*,
        CASE WHEN s.unique_period IS NULL THEN s.unique_base
             ELSE s.unique_base || '@'
                 || floor(extract(epoch FROM now())::float8 / s.unique_period)::bigint
        END AS wanted_key
    FROM {source}
),
ins AS (
    INSERT INTO {jobs} AS j (id, function, queue, status, priority, payload, max_attempts,
        retry_intervals, scheduled_at, expires_at, key, group_key, meta, timeout, heartbeat,
        result_ttl, failure_ttl, failure_mode, callbacks, repeat, error, completed_at, purge_at,
        unique_key, unique_states, batch_id)
    SELECT id, function, queue,
        CASE WHEN dep_error IS NOT NULL THEN 'failed'
             WHEN waiting THEN 'waiting'
             WHEN coalesce(at, now() + make_interval(secs => coalesce(delay, 0))) > now()
                 THEN 'scheduled'
             ELSE 'queued' END,
        priority, payload, max_attempts, retry_intervals::jsonb,
        coalesce(at, now() + make_interval(secs => coalesce(delay, 0))),
        now() + make_interval(secs => ttl),
        key, group_key, meta::jsonb, timeout, heartbeat, result_ttl, failure_ttl, failure_mode,
        callbacks::jsonb, repeat::jsonb, dep_error,
        CASE WHEN dep_error IS NOT NULL THEN now() END,
        CASE WHEN dep_error IS NOT NULL THEN now() + make_interval(secs => failure_ttl) END,
        wanted_key, string_to_array(unique_states, ','), batch_id
    FROM src ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING j.*
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE status = 'queued') AS q
),
-- The inputs not written that ask for a key: its holder is the first job of this batch
-- with it, else the one already there (joins, not a lookup per input: batches are large).
unwritten AS (
    SELECT src.ord, src.wanted_key FROM src
    WHERE src.wanted_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = src.id)
),
answer AS (
    SELECT src.ord, false AS existing, ins.* FROM src JOIN ins ON ins.id = src.id
    UNION ALL
    SELECT u.ord, true, mine.* FROM unwritten u
    JOIN (SELECT DISTINCT ON (unique_key) * FROM ins WHERE unique_key IS NOT NULL
          ORDER BY unique_key, id) AS mine ON mine.unique_key = u.wanted_key
    UNION ALL
    SELECT u.ord, true, k.* FROM unwritten u
    JOIN {jobs} k ON k.unique_key = u.wanted_key
    WHERE k.unique_key IS NOT NULL AND k.status = ANY(k.unique_states)
      AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.unique_key = u.wanted_key)
)
SELECT src.wanted_key, answer.* FROM src
LEFT JOIN answer ON answer.ord = src.ord
CROSS JOIN (SELECT count(*) FROM wake) AS w
ORDER BY src.ord;

-- name: job_unique_holders
-- The jobs holding the given unique keys (in one of their key's statuses).
SELECT * FROM {jobs} WHERE unique_key = ANY(%(keys)s::text[]) AND status = ANY(unique_states);

-- name: job_deps_lock
-- The upstream jobs of a new dependent, locked so none ends before the dependent is linked.
SELECT id, status FROM {jobs} WHERE id = ANY(%(ids)s::bigint[]) FOR SHARE;

-- name: job_deps_link
-- Record dependencies and flag upstream jobs so whoever ends them resolves their dependents.
WITH link AS (
    INSERT INTO {job_deps} (job_id, depends_on, allow_failure)
    SELECT * FROM unnest(%(job_ids)s::bigint[], %(upstream)s::bigint[], %(allow)s::bool[])
    ON CONFLICT DO NOTHING
    RETURNING depends_on
)
UPDATE {jobs} SET has_dependents = true
WHERE id IN (SELECT depends_on FROM link) AND NOT has_dependents;

-- name: job_get
-- One job by id.
SELECT * FROM {jobs} WHERE id = %(id)s;

-- name: job_get_many
-- The given jobs (missing ones are absent).
SELECT * FROM {jobs} WHERE id = ANY(%(ids)s::bigint[]);

-- name: job_statuses
-- The status of each given job (missing jobs are absent from the answer).
SELECT id, status FROM {jobs} WHERE id = ANY(%(ids)s::bigint[]);

-- name: job_dependencies
-- The jobs a job depends on, with their status (NULL for a row that is gone).
SELECT d.depends_on AS id, d.allow_failure, j.status
FROM {job_deps} d LEFT JOIN {jobs} j ON j.id = d.depends_on
WHERE d.job_id = %(id)s ORDER BY d.depends_on;

-- name: job_cancel
-- Stop jobs that have not started; they end 'aborted' (and waiters are told).
WITH cancelled AS (
    UPDATE {jobs} SET status = 'aborted', completed_at = now(),
        error = 'cancelled before it started',
        purge_at = now() + make_interval(secs => CASE WHEN failure_ttl IS NOT NULL THEN least(failure_ttl, 315576000) END)
    WHERE id = ANY(%(ids)s::bigint[]) AND status IN ('queued', 'scheduled', 'waiting')
    RETURNING id, status, queue, has_dependents
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM cancelled HAVING count(*) > 0
)
SELECT cancelled.* FROM cancelled CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: job_abort
-- Ask the worker running a job to stop it; the worker ends it 'aborted'.
WITH asked AS (
    UPDATE {jobs} SET status = 'aborting'
    WHERE id = %(id)s AND status = 'active'
    RETURNING id
)
SELECT id, pg_notify(%(channel)s, 'a:' || id) FROM asked;

-- name: job_requeue
-- Run ended jobs again: their last attempt goes to the history, and they get one more.
-- A unique job comes back only while no other job holds its key (it would be a duplicate
-- of that one), and of several with one key only the newest.
WITH locked AS (
    SELECT id, attempts, worker_id, started_at, completed_at, status, error, unique_key
    FROM {jobs}
    WHERE id = ANY(%(ids)s::bigint[]) AND status IN ('failed', 'aborted', 'expired')
    FOR UPDATE
),
old AS (
    SELECT DISTINCT ON (l.unique_key, CASE WHEN l.unique_key IS NULL THEN l.id END) l.*
    FROM locked l
    WHERE l.unique_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM {jobs} h
        WHERE h.unique_key = l.unique_key AND h.status = ANY(h.unique_states) AND h.id <> l.id)
    ORDER BY l.unique_key, CASE WHEN l.unique_key IS NULL THEN l.id END, l.id DESC
),
history AS (
    INSERT INTO {executions} (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
    SELECT id, attempts, worker_id, started_at, coalesce(completed_at, now()), status, error
    FROM old WHERE attempts > 0
),
again AS (
    UPDATE {jobs} j SET
        -- A dependent whose upstream jobs have not all ended waits for them again.
        status = CASE WHEN EXISTS (
                SELECT 1 FROM {job_deps} d JOIN {jobs} u ON u.id = d.depends_on
                WHERE d.job_id = j.id
                  AND u.status NOT IN ('complete', 'failed', 'aborted', 'expired'))
            THEN 'waiting' ELSE 'queued' END,
        scheduled_at = now(), completed_at = NULL,
        started_at = NULL, purge_at = NULL, error = NULL, result = NULL, worker_id = NULL,
        expires_at = NULL, max_attempts = j.attempts - j.lost - j.released - j.snoozed + 1
    FROM old WHERE j.id = old.id
    RETURNING j.id, j.queue, j.status
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT DISTINCT queue FROM again WHERE status = 'queued') AS q
)
SELECT again.id FROM again CROSS JOIN (SELECT count(*) FROM wake) AS w;

-- name: job_touch
-- Renew an active job's heartbeat: a sign of life for the rescue rules.
UPDATE {jobs} SET heartbeat_at = now()
WHERE id = %(id)s AND status IN ('active', 'aborting') RETURNING id;

-- name: job_claim
-- Claim up to %(limit)s runnable jobs of the given queues. Per queue the claim index is
-- walked in (priority DESC, id) order and stops after `limit` unlocked rows; the rows are
-- then merged in the worker's dequeue order (and returned in it). A job of a group enters
-- only if the claim can insert the group's row: the primary key of job_groups settles
-- races between workers. An attempt starts without the progress of the one before it.
-- A queue with limits (a row in queue_limits) is left alone: a worker of such a queue
-- claims with job_claim_limited (it learns of limits when it starts, from a notice when
-- they are set, and at each heartbeat). A queue without limits costs one probe of that
-- (small) table. The jobs are picked by one of the claim_picked_* parts below: from
-- several queues merged in the worker's order, or from one queue (simpler to plan, and
-- the claim is planned at every run: it runs at every wake-up of an idle worker).
WITH {picked},
grouped AS (
    INSERT INTO {job_groups} (group_key, job_id)
    SELECT DISTINCT ON (group_key) group_key, id FROM picked
    WHERE group_key IS NOT NULL
    ORDER BY group_key, priority DESC, id
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
claimed AS (
    UPDATE {jobs} j SET status = 'active', attempts = j.attempts + 1, started_at = now(),
        heartbeat_at = now(), worker_id = %(worker)s, error = NULL,
        progress = NULL, progress_message = NULL
    -- By primary key whatever the estimate of `picked`: a generic plan takes LIMIT $n as
    -- a tenth of the table and would otherwise hash-join the whole table to it.
    WHERE j.id = ANY (ARRAY(SELECT id FROM picked WHERE group_key IS NULL
                            UNION ALL SELECT job_id FROM grouped))
    -- What a worker needs to run the job (decoding fewer columns is a measurable share of
    -- a worker's time with short jobs); the rest is known (worker_id, heartbeat_at) or NULL.
    RETURNING j.id, j.function, j.queue, j.status, j.priority, j.payload, j.attempts,
        j.max_attempts, j.lost, j.released, j.snoozed, j.retry_intervals, j.scheduled_at,
        j.enqueued_at, j.started_at, j.expires_at, j.key, j.group_key, j.meta, j.timeout,
        j.heartbeat, j.result_ttl, j.failure_ttl, j.failure_mode, j.callbacks, j.repeat,
        j.batch_id
)
-- In the order picked, so that the worker starts them in that order.
SELECT claimed.* FROM claimed JOIN picked ON picked.id = claimed.id ORDER BY picked.ord;

-- name: claim_picked_queues
-- Part of job_claim (not a statement): the jobs of several queues, walked per queue in
-- (priority DESC, id) order, stopping after `limit` unlocked rows each, then merged in the
-- worker's dequeue order ({order}).
ranked AS (
    SELECT c.id, c.group_key, c.priority, q.pos,
        row_number() OVER (PARTITION BY q.pos ORDER BY c.priority DESC, c.id) AS rank
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
    CROSS JOIN LATERAL (
        SELECT j.id, j.group_key, j.priority FROM {jobs} j
        WHERE j.status = 'queued' AND j.queue = q.name
          AND (j.expires_at IS NULL OR j.expires_at > now())
          AND (j.group_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM {job_groups} g WHERE g.group_key = j.group_key))
        ORDER BY j.priority DESC, j.id
        LIMIT %(limit)s
        FOR UPDATE OF j SKIP LOCKED
    ) AS c
    WHERE NOT EXISTS (SELECT 1 FROM {queue_limits} l WHERE l.queue = q.name)
),
picked AS (
    SELECT id, group_key, priority, ord FROM (
        SELECT id, group_key, priority,
            row_number() OVER (ORDER BY {order}) AS ord
        FROM ranked) AS numbered
    WHERE ord <= %(limit)s
)

-- name: claim_picked_one
-- Part of job_claim (not a statement): the jobs of one queue (%(queue)s), walked in
-- (priority DESC, id) order, stopping after `limit` unlocked rows.
picked AS (
    SELECT c.id, c.group_key, c.priority,
        row_number() OVER (ORDER BY c.priority DESC, c.id) AS ord
    FROM (
        SELECT j.id, j.group_key, j.priority FROM {jobs} j
        WHERE j.status = 'queued' AND j.queue = %(queue)s
          AND (j.expires_at IS NULL OR j.expires_at > now())
          AND (j.group_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM {job_groups} g WHERE g.group_key = j.group_key))
          AND NOT EXISTS (SELECT 1 FROM {queue_limits} l WHERE l.queue = %(queue)s)
        ORDER BY j.priority DESC, j.id
        LIMIT %(limit)s
        FOR UPDATE OF j SKIP LOCKED
    ) AS c
)

-- name: job_claim_limited
-- job_claim for a worker some of whose queues have limits (queue_limits), obeying them.
-- The limits of the worker's queues are locked first, in key order, so that the claims of
-- a limited queue take turns, and their clock is read once they are held: the moment
-- charged to the limits, and the started_at of the jobs claimed (never earlier than a
-- moment charged before, so each limit's claims are in order). A rate limit of N per period
-- lets no more than N be claimed in any window of the period plus the hand-off (50 ms): the
-- worker starts a rated job that long after sending its claim, so the handlers' own start
-- times, which vary less than that hand-off, also keep N per period. A limited queue gives no
-- more than its limits allow now, nor more than %(free)s (the worker's free slots: its
-- jobs start at once); a function with no room left is skipped in the walk, and at most
-- its room of a function is taken. The limits are charged with what was really claimed.
-- The answer has one row (job columns NULL) when nothing was claimed. Every row says
-- whether any of the queues still has limits (`limited`); `held`, that a limited queue
-- gave nothing though it has runnable jobs; `retry_in`, in how many seconds a rate limit
-- lets more start.
WITH lim AS MATERIALIZED (
    SELECT l.queue, l.function, l.rate_limit, l.rate_period, l.concurrency, l.running,
        l.recent_at, l.recent_n, l.recent_since,
        make_interval(secs => l.rate_period + %(handoff)s::float8) AS span
    FROM {queue_limits} l
    WHERE l.queue = ANY(%(queues)s::text[])
    ORDER BY l.queue, l.function
    FOR NO KEY UPDATE
),
clock AS MATERIALIZED (
    SELECT greatest(clock_timestamp(), max(l.recent_at[cardinality(l.recent_at)])) AS at
    FROM lim l
),
room AS MATERIALIZED (
    SELECT l.queue, l.function, l.rate_limit IS NOT NULL AS rated,
        greatest(0, least(l.concurrency - l.running, l.rate_limit - w.used)) AS room,
        extract(epoch FROM w.oldest + l.span - c.at)::float8
            AS frees_in
    FROM lim l
    CROSS JOIN clock c
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(e.n), 0) AS used, min(e.at) AS oldest
        FROM unnest(l.recent_at, l.recent_n) AS e(at, n)
        WHERE e.at > c.at - l.span
    ) AS w
),
caps AS (
    SELECT queue, least(%(free)s::int, min(room) FILTER (WHERE function = '')) AS cap,
        bool_or(function <> '') AS per_function,
        array_agg(function) FILTER (WHERE function <> '' AND room = 0) AS blocked
    FROM room GROUP BY queue
),
ranked AS (
    SELECT c.id, c.group_key, c.priority, q.name AS queue, q.pos,
        row_number() OVER (PARTITION BY q.pos ORDER BY c.priority DESC, c.id) AS rank
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
    LEFT JOIN caps k ON k.queue = q.name
    CROSS JOIN LATERAL (
        -- The queue's limits (cap NULL: none) stop the walk early; with limits of some
        -- of its functions, the walk goes on (up to `limit` rows) past the jobs of a
        -- function beyond its room.
        SELECT w.id, w.group_key, w.priority FROM (
            SELECT v.*, row_number() OVER (PARTITION BY v.function
                                           ORDER BY v.priority DESC, v.id) AS nth
            FROM (
                SELECT j.id, j.group_key, j.priority, j.function FROM {jobs} j
                WHERE j.status = 'queued' AND j.queue = q.name
                  AND (j.expires_at IS NULL OR j.expires_at > now())
                  AND (j.group_key IS NULL OR NOT EXISTS (
                      SELECT 1 FROM {job_groups} g WHERE g.group_key = j.group_key))
                  AND (k.blocked IS NULL OR j.function <> ALL (k.blocked))
                ORDER BY j.priority DESC, j.id
                LIMIT CASE WHEN k.per_function THEN %(limit)s
                           ELSE least(%(limit)s, k.cap) END
                FOR UPDATE OF j SKIP LOCKED
            ) AS v
        ) AS w
        LEFT JOIN room f ON f.queue = q.name AND f.function = w.function
        WHERE f.room IS NULL OR w.nth <= f.room
        ORDER BY w.priority DESC, w.id
        LIMIT k.cap
    ) AS c
),
picked AS (
    SELECT id, group_key, priority, ord FROM (
        SELECT id, group_key, priority,
            row_number() OVER (ORDER BY {order}) AS ord
        FROM ranked) AS numbered
    WHERE ord <= %(limit)s
),
grouped AS (
    INSERT INTO {job_groups} (group_key, job_id)
    SELECT DISTINCT ON (group_key) group_key, id FROM picked
    WHERE group_key IS NOT NULL
    ORDER BY group_key, priority DESC, id
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
claimed AS (
    UPDATE {jobs} j SET status = 'active', attempts = j.attempts + 1,
        started_at = (SELECT at FROM clock), heartbeat_at = now(), worker_id = %(worker)s,
        error = NULL, progress = NULL, progress_message = NULL
    WHERE j.id = ANY (ARRAY(SELECT id FROM picked WHERE group_key IS NULL
                            UNION ALL SELECT job_id FROM grouped))  -- as in job_claim
    -- The columns of job_claim, named: the statement is prepared, and a `j.*` would change
    -- shape when a newer version adds a column while this worker runs.
    RETURNING j.id, j.function, j.queue, j.status, j.priority, j.payload, j.attempts,
        j.max_attempts, j.lost, j.released, j.snoozed, j.retry_intervals, j.scheduled_at,
        j.enqueued_at, j.started_at, j.expires_at, j.key, j.group_key, j.meta, j.timeout,
        j.heartbeat, j.result_ttl, j.failure_ttl, j.failure_mode, j.callbacks, j.repeat,
        j.batch_id
),
charged AS (
    -- Per limit, the jobs it counts (a function's limit: only that function's); the
    -- claims of the last window as (moment, count) pairs, this one joining the last pair
    -- if that began less than a hundredth of the window ago.
    UPDATE {queue_limits} l SET
        running = l.running + CASE WHEN l.concurrency IS NULL THEN 0 ELSE u.n END,
        recent_at = u.recent_at, recent_n = u.recent_n, recent_since = u.recent_since
    FROM (
        SELECT m.queue, m.function, t.n,
            CASE WHEN m.rate_limit IS NULL THEN '{{}}'
                 WHEN s.joins THEN s.kept_at[1:cardinality(s.kept_at) - 1] || c.at
                 ELSE s.kept_at || c.at END AS recent_at,
            CASE WHEN m.rate_limit IS NULL THEN '{{}}'
                 WHEN s.joins THEN s.kept_n[1:cardinality(s.kept_n) - 1]
                                   || (s.kept_n[cardinality(s.kept_n)] + t.n)::int
                 ELSE s.kept_n || t.n::int END AS recent_n,
            CASE WHEN m.rate_limit IS NULL THEN NULL
                 WHEN s.joins THEN m.recent_since ELSE c.at END AS recent_since
        FROM lim m
        CROSS JOIN clock c
        JOIN (SELECT x.queue, x.function, count(*) AS n
              FROM lim x JOIN claimed j
                ON j.queue = x.queue AND (x.function = '' OR x.function = j.function)
              GROUP BY x.queue, x.function) AS t
          ON t.queue = m.queue AND t.function = m.function
        CROSS JOIN LATERAL (
            SELECT coalesce(array_agg(e.at ORDER BY e.ord), '{{}}') AS kept_at,
                coalesce(array_agg(e.n ORDER BY e.ord), '{{}}') AS kept_n,
                coalesce(bool_or(e.ord = cardinality(m.recent_at))
                         AND c.at - m.recent_since
                             < make_interval(secs => m.rate_period / 100), false) AS joins
            FROM unnest(m.recent_at, m.recent_n) WITH ORDINALITY AS e(at, n, ord)
            WHERE e.at > c.at - m.span
        ) AS s
    ) AS u
    WHERE l.queue = u.queue AND l.function = u.function
),
hint AS (
    SELECT bool_or(true) AS held,
        min(f.frees_in) FILTER (WHERE f.rated AND f.room < least(%(free)s, %(limit)s))
            AS retry_in
    FROM caps k
    JOIN room f ON f.queue = k.queue
    WHERE %(free)s > 0
      AND NOT EXISTS (SELECT 1 FROM ranked r WHERE r.queue = k.queue)
      AND EXISTS (SELECT 1 FROM {jobs} j
                  WHERE j.status = 'queued' AND j.queue = k.queue
                    AND (j.expires_at IS NULL OR j.expires_at > now())
                    AND (j.group_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM {job_groups} g WHERE g.group_key = j.group_key)))
)
-- In the order picked, so that the worker starts them in that order; `rated`: the job is
-- under a rate limit (its queue's or its function's).
SELECT claimed.*, EXISTS (SELECT 1 FROM lim) AS limited, h.held, h.retry_in,
    EXISTS (SELECT 1 FROM lim l WHERE l.rate_limit IS NOT NULL AND l.queue = claimed.queue
            AND l.function IN ('', claimed.function)) AS rated
FROM hint h
LEFT JOIN (claimed JOIN picked ON picked.id = claimed.id) ON true
ORDER BY picked.ord;

-- name: job_complete_many
-- Record the outcome of a batch of attempts, sent as one JSON array of
-- [id, attempt, status, result, error, retry delay, seconds the job waited here before its
-- handler started, how the attempt ended ('timeout', 'error', ...)] (one parameter decoded
-- by PostgreSQL: far cheaper for the worker than an array per column). started_at becomes the moment the handler really started. Each
-- write is guarded by ownership of the attempt (id, attempt number, worker, still active),
-- so a worker that lost a job to the sweep changes nothing. Statuses: an end status,
-- 'queued'/'scheduled' for a retry, 'deleted' (failure_mode="delete"), or 'snoozed': the
-- job is back 'scheduled' after the delay ('queued' for none) without spending an attempt
-- (counted in `snoozed`), its history says 'snoozed', and like a retry it is not an end:
-- waiters are not told, dependents keep waiting; its group slot is freed.
-- The worker and status tests are wrapped in CASE on purpose. As plain conditions they
-- match the partial index on active jobs, and ANALYZE rarely sees active rows, so the
-- planner expects ~1 row there and loops over the whole batch for each of this worker's
-- active jobs (quadratic: 0.2-0.8 s for 200 outcomes with 3,000 active jobs, worse as a
-- generic plan). Wrapped, they can only filter the rows found by primary key. The ids are
-- also given as an array (`j.id = ANY(ARRAY(...))`): the planner counts ~100 rows from the
-- JSON, and would otherwise find a sequential scan of a table of some thousand jobs
-- cheaper than as many index probes (it reads every row: ~2 ms a batch at 10,000 jobs).
WITH v AS (
    SELECT (e->>0)::bigint AS id, (e->>1)::int AS attempt, e->>2 AS status, e->>3 AS result,
        e->>4 AS error, (e->>5)::float8 AS delay, (e->>6)::float8 AS waited, e->>7 AS kind
    FROM json_array_elements(%(batch)s::json) AS e
),
gone AS (
    DELETE FROM {jobs} j USING v
    WHERE v.status = 'deleted' AND j.id = v.id AND j.attempts = v.attempt
      AND j.id = ANY(ARRAY(SELECT id FROM v WHERE status = 'deleted'))
      AND CASE WHEN j.worker_id = %(worker)s AND j.status IN ('active', 'aborting') THEN true END
    RETURNING j.id, 'deleted'::text AS status, j.queue, j.group_key, j.has_dependents
),
done AS (
    UPDATE {jobs} j SET
        status = CASE WHEN v.status <> 'snoozed' THEN v.status
                      WHEN v.delay > 0 THEN 'scheduled' ELSE 'queued' END,
        snoozed = j.snoozed + CASE WHEN v.status = 'snoozed' THEN 1 ELSE 0 END,
        result = v.result,
        error = v.error,
        started_at = j.started_at + make_interval(secs => v.waited),
        completed_at = CASE WHEN v.status IN ('complete', 'failed', 'aborted', 'expired')
                            THEN now() END,
        scheduled_at = CASE WHEN v.status IN ('scheduled', 'snoozed')
                            THEN now() + make_interval(secs => v.delay) ELSE j.scheduled_at END,
        purge_at = CASE WHEN v.status = 'complete' THEN now() + make_interval(secs => CASE WHEN j.result_ttl IS NOT NULL THEN least(j.result_ttl, 315576000) END)
                        WHEN v.status IN ('failed', 'aborted', 'expired')
                            THEN now() + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END) END
    FROM v
    WHERE v.status <> 'deleted' AND j.id = v.id AND j.attempts = v.attempt
      AND j.id = ANY(ARRAY(SELECT id FROM v WHERE status <> 'deleted'))
      AND CASE WHEN j.worker_id = %(worker)s AND j.status IN ('active', 'aborting') THEN true END
    RETURNING j.id, j.status, j.queue, j.group_key, j.has_dependents, j.attempts,
        j.started_at, j.error, v.kind, v.status AS settled
),
ended AS (
    SELECT id, status, queue, group_key, has_dependents FROM done
    UNION ALL
    SELECT id, status, queue, group_key, has_dependents FROM gone
),
history AS (
    INSERT INTO {executions} (job_id, attempt, worker_id, started_at, outcome, error)
    SELECT id, attempts, %(worker)s, started_at,
        CASE WHEN settled = 'snoozed' THEN 'snoozed'
             WHEN kind = 'timeout' THEN 'timeout' ELSE 'failed' END, error FROM done
    WHERE status IN ('queued', 'scheduled')
),
freed AS (
    DELETE FROM {job_groups} g USING ended
    WHERE g.group_key = ended.group_key AND g.job_id = ended.id
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT DISTINCT queue FROM ended
          WHERE status = 'queued' OR group_key IS NOT NULL) AS q
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM ended WHERE status NOT IN ('queued', 'scheduled')
    HAVING count(*) > 0
)
SELECT ended.id, ended.status, ended.has_dependents FROM ended
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: job_progress_many
-- Record the progress reported by running jobs, sent as one JSON array of
-- [id, attempt, fraction, message]: on its own once a second, and for the last value of
-- attempts that ended, just before job_complete_many in its transaction. Each write is
-- guarded by ownership of the attempt (id, attempt number, worker, still active or
-- aborting), as the heartbeat's and the outcome's are; the tests are wrapped in CASE for
-- the reason given at job_complete_many.
WITH v AS (
    SELECT (e->>0)::bigint AS id, (e->>1)::int AS attempt, (e->>2)::float8 AS progress,
        e->>3 AS progress_message
    FROM json_array_elements(%(batch)s::json) AS e
)
UPDATE {jobs} j SET progress = v.progress, progress_message = v.progress_message
FROM v
WHERE j.id = v.id AND j.attempts = v.attempt AND j.id = ANY(ARRAY(SELECT id FROM v))
  AND CASE WHEN j.worker_id = %(worker)s AND j.status IN ('active', 'aborting') THEN true END
RETURNING j.id;

-- name: job_unclaim_many
-- Give back claimed jobs this worker held and never started (its slots stayed busy, or it
-- is stopping): as if never claimed, so no attempt and no history. A job asked to abort
-- meanwhile ends 'aborted' without running.
WITH back AS (
    UPDATE {jobs} j SET
        status = CASE WHEN j.status = 'aborting' THEN 'aborted' ELSE 'queued' END,
        attempts = j.attempts - 1, worker_id = NULL, started_at = NULL, heartbeat_at = NULL,
        error = CASE WHEN j.status = 'aborting' THEN 'aborted before it started' END,
        completed_at = CASE WHEN j.status = 'aborting' THEN now() END,
        purge_at = CASE WHEN j.status = 'aborting'
                        THEN now() + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END) END
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.worker_id = %(worker)s
      AND j.status IN ('active', 'aborting')
    RETURNING j.id, j.status, j.queue, j.function, j.has_dependents
),
freed AS (
    DELETE FROM {job_groups} g USING back WHERE g.job_id = back.id
),
{free_slots},
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT queue FROM back WHERE status = 'queued' UNION SELECT queue FROM slots) AS q
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM back WHERE status = 'aborted' HAVING count(*) > 0
)
SELECT back.id, back.status, back.has_dependents FROM back
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: job_release_many
-- Put back jobs a stopping worker did not finish: not an attempt that failed nor a lost
-- one, so neither a retry nor the max_lost budget is spent (counted in `released`). They
-- are recorded in the history as 'interrupted'. A job asked to abort ends 'aborted' with
-- its reason, retention and an ended-jobs notice, like any other end.
WITH back AS (
    UPDATE {jobs} j SET
        status = CASE WHEN j.status = 'aborting' THEN 'aborted' ELSE 'queued' END,
        released = j.released + CASE WHEN j.status = 'aborting' THEN 0 ELSE 1 END,
        worker_id = NULL,
        error = CASE WHEN j.status = 'aborting'
                     THEN 'aborted: its worker shut down before the job stopped'
                     ELSE j.error END,
        completed_at = CASE WHEN j.status = 'aborting' THEN now() END,
        purge_at = CASE WHEN j.status = 'aborting'
                        THEN now() + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END) END
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.worker_id = %(worker)s
      AND j.status IN ('active', 'aborting')
    RETURNING j.id, j.status, j.queue, j.function, j.group_key, j.attempts, j.started_at,
        j.has_dependents
),
history AS (
    INSERT INTO {executions} (job_id, attempt, worker_id, started_at, outcome, error)
    SELECT id, attempts, %(worker)s, started_at, 'interrupted', 'worker shut down' FROM back
),
freed AS (
    DELETE FROM {job_groups} g USING back WHERE g.job_id = back.id
),
{free_slots},
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT queue FROM back WHERE status = 'queued' UNION SELECT queue FROM slots) AS q
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM back WHERE status = 'aborted' HAVING count(*) > 0
)
SELECT back.id, back.status, back.has_dependents FROM back
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: job_fail_unrecordable
-- The last resort for one outcome the batch statement could not write (a value out of
-- range in a row written by hand or by another version): the attempt ends 'failed' with
-- the reason, kept for a week, under the same ownership guard.
WITH done AS (
    UPDATE {jobs} j SET status = 'failed', result = NULL, error = %(error)s,
        completed_at = now(), purge_at = now() + interval '7 days'
    WHERE j.id = %(id)s AND j.attempts = %(attempt)s
      AND CASE WHEN j.worker_id = %(worker)s AND j.status IN ('active', 'aborting') THEN true END
    RETURNING j.id, j.status, j.queue, j.function, j.group_key, j.has_dependents
),
freed AS (
    DELETE FROM {job_groups} g USING done
    WHERE g.group_key = done.group_key AND g.job_id = done.id
),
{free_slots},
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue) FROM (SELECT DISTINCT queue FROM slots) AS q
),
told AS (
    SELECT pg_notify(%(channel)s, 'd:' || id) FROM done
)
SELECT done.id, done.status, done.has_dependents FROM done
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: job_stage_scheduled
-- Move due scheduled jobs to the queue and say when the next one is due.
WITH due AS (
    SELECT id FROM {jobs}
    WHERE status = 'scheduled' AND scheduled_at <= {now}
    ORDER BY scheduled_at LIMIT 5000
    FOR UPDATE SKIP LOCKED
),
staged AS (
    UPDATE {jobs} j SET status = 'queued' FROM due WHERE j.id = due.id RETURNING j.queue
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue) FROM (SELECT DISTINCT queue FROM staged) AS q
)
SELECT (SELECT count(*) FROM staged) AS staged,
       (SELECT count(*) FROM wake) AS woken,
       (SELECT extract(epoch FROM min(scheduled_at) - {now}) FROM {jobs}
        WHERE status = 'scheduled' AND scheduled_at > {now}) AS next_due_in;

-- name: job_heartbeat_many
-- A worker's heartbeat: renew itself and its heartbeating jobs; learn which of its jobs
-- were asked to abort, which attempts ('id:attempt') the database says it holds, whether
-- it is still registered, and whether any of its queues has limits.
WITH me AS (
    UPDATE {workers} SET heartbeat_at = now() WHERE id = %(worker)s RETURNING id
),
beat AS (
    UPDATE {jobs} SET heartbeat_at = now()
    WHERE id = ANY(%(job_ids)s::bigint[]) AND worker_id = %(worker)s
      AND status IN ('active', 'aborting')
    RETURNING id
)
SELECT (SELECT count(*) FROM me) AS registered,
       (SELECT count(*) FROM beat) AS renewed,
       ARRAY(SELECT id FROM {jobs} WHERE worker_id = %(worker)s AND status = 'aborting')
           AS aborting,
       ARRAY(SELECT id || ':' || attempts FROM {jobs} WHERE worker_id = %(worker)s
             AND status IN ('active', 'aborting')) AS held,
       EXISTS (SELECT 1 FROM {queue_limits} l JOIN {workers} w ON l.queue = ANY(w.queues)
               WHERE w.id = %(worker)s) AS limited;

-- name: deps_resolve
-- Promote or fail waiting jobs whose dependencies have all ended. With %(ids)s NULL every
-- waiting job is examined (the sweep's safety net); otherwise only dependents of those ids.
-- A dependency whose row is gone counts as not complete. Composed twice ({lock}): as
-- deps_resolve, for the dependents of jobs that just ended, it waits for a dependent that
-- another transaction holds (the sweep's safety net, or a worker ending another of its
-- dependencies, each judging it with this transaction's jobs still running): skipped, it
-- would wait for the next sweep. Rows are locked in id order, so that two such
-- transactions cannot deadlock on them. As deps_resolve_all, the sweep's, it skips them:
-- whoever holds one resolves it.
WITH cand AS (
    SELECT w.id FROM {jobs} w
    WHERE w.status = 'waiting'
      AND (%(ids)s::bigint[] IS NULL OR w.id IN (
          SELECT d.job_id FROM {job_deps} d WHERE d.depends_on = ANY(%(ids)s::bigint[])))
    ORDER BY w.id
    {lock}
),
st AS (
    SELECT c.id,
        bool_and(u.id IS NULL OR u.status IN ('complete', 'failed', 'aborted', 'expired'))
            AS settled,
        bool_or((u.id IS NULL OR u.status <> 'complete') AND NOT d.allow_failure) AS broken,
        string_agg(CASE WHEN (u.id IS NULL OR u.status <> 'complete') AND NOT d.allow_failure
                        THEN d.depends_on || ' (' || coalesce(u.status, 'deleted') || ')' END,
                   ', ') AS culprits
    FROM cand c
    JOIN {job_deps} d ON d.job_id = c.id
    LEFT JOIN {jobs} u ON u.id = d.depends_on
    GROUP BY c.id
),
upd AS (
    UPDATE {jobs} j SET
        status = CASE WHEN st.broken THEN 'failed'
                      WHEN j.scheduled_at > now() THEN 'scheduled' ELSE 'queued' END,
        error = CASE WHEN st.broken THEN
            'pgwerk.exceptions.DependencyFailed: dependency ' || st.culprits
            || ' did not complete' END,
        completed_at = CASE WHEN st.broken THEN now() END,
        purge_at = CASE WHEN st.broken THEN now() + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END) END
    FROM st WHERE j.id = st.id AND st.settled
    RETURNING j.id, j.status, j.queue, j.has_dependents
),
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE status = 'queued') AS q
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM upd WHERE status = 'failed' HAVING count(*) > 0
)
SELECT upd.id, upd.status, upd.has_dependents FROM upd
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: batch_insert
-- A new batch, not sealed yet: its members are written next, then it is sealed, in the
-- same transaction.
INSERT INTO {batches} (description, callbacks, channel)
VALUES (%(description)s, %(callbacks)s::jsonb, %(channel)s)
RETURNING id, created_at;

-- name: batch_seal
-- Count the members just written and seal the batch: from now on the member that brings
-- `pending` to 0 enqueues its callbacks. Members written already ended (failed by a
-- dependency that had failed) are counted here; every later change by the trigger.
UPDATE {batches} SET total = %(total)s, pending = pending + %(pending)s,
    failed = failed + %(failed)s, sealed = true
WHERE id = %(id)s
RETURNING pending;

-- name: batch_finish
-- Enqueue the callbacks of a sealed batch with no pending member (one whose members all
-- ended as they were written, or an empty one); what the trigger does for the last member.
SELECT {batch_finish}(%(id)s::bigint) AS fired;

-- name: batch_lock
-- Lock batch rows in id order before a completion batch ends their members: the trigger
-- would lock them in the order the rows are updated, and two workers ending members of
-- the same batches in opposite orders would deadlock.
SELECT id FROM {batches} WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR UPDATE;

-- name: batch_get
-- One batch by id.
SELECT * FROM {batches} WHERE id = %(id)s;

-- name: batch_list
-- Batches, newest first, one page.
SELECT * FROM {batches} ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: execution_list
-- The recorded attempts of a job, oldest first.
SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error
FROM {executions} WHERE job_id = %(id)s ORDER BY attempt, id;

-- name: worker_register
-- Register a worker, or renew one presumed dead (it heartbeats again).
INSERT INTO {workers} (id, hostname, pid, queues, concurrency, pool, heartbeat_interval)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s, %(pool)s,
        %(heartbeat_interval)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopping = false;

-- name: worker_unregister
-- A worker that stopped: its row goes.
DELETE FROM {workers} WHERE id = %(id)s;

-- name: worker_stopping
-- A worker draining for shutdown (shown as stopping; it claims nothing more).
UPDATE {workers} SET stopping = true WHERE id = %(id)s;

-- name: worker_list
-- Registered workers with the age of their heartbeat and their running jobs.
SELECT w.*, extract(epoch FROM now() - w.heartbeat_at) AS heartbeat_age,
    (SELECT count(*) FROM {jobs} j
     WHERE j.worker_id = w.id AND j.status IN ('active', 'aborting')) AS active_jobs
FROM {workers} w ORDER BY w.started_at;

-- name: sweep_lock
-- Only one process sweeps at a time; the lock ends with the transaction. The pass gives
-- up rather than wait long on a lock or a slow statement (the next pass tries again).
SELECT pg_try_advisory_xact_lock(%(lock)s) AS leader,
    set_config('lock_timeout', '2s', true), set_config('statement_timeout', '60s', true);

-- name: sweep_rescue_orphans
-- Active jobs whose worker is gone or silent for two of its heartbeat intervals, or whose
-- own heartbeat lapsed (three of its intervals), or that ran
-- far past max_active_secs without a sign of life (claim, or touch_job). A lost attempt does not spend a retry;
-- a job lost more than max_lost times fails. An 'aborting' one ends 'aborted'.
WITH lost AS (
    SELECT j.id, j.attempts, j.worker_id, j.started_at FROM {jobs} j
    LEFT JOIN {workers} w ON w.id = j.worker_id
    WHERE j.status IN ('active', 'aborting')
      AND (w.id IS NULL
           OR w.heartbeat_at < {now} - make_interval(secs => 2 * w.heartbeat_interval + 1)
           OR (j.heartbeat IS NOT NULL
               AND j.heartbeat_at < {now} - make_interval(secs => least(j.heartbeat, 315576000) * 3))
           OR (j.heartbeat IS NULL AND %(max_active)s::float8 IS NOT NULL
               AND coalesce(j.heartbeat_at, j.started_at) < {now} - make_interval(
                   secs => CASE WHEN j.timeout IS NULL THEN %(max_active)s::float8
                                ELSE greatest(%(max_active)s::float8, least(j.timeout, 315576000) + 60) END)))
    FOR UPDATE OF j SKIP LOCKED
),
history AS (
    INSERT INTO {executions} (job_id, attempt, worker_id, started_at, outcome, error)
    SELECT id, attempts, worker_id, started_at, 'lost',
        'the worker running this attempt died or stopped heartbeating' FROM lost
),
upd AS (
    UPDATE {jobs} j SET
        lost = j.lost + 1,
        status = CASE WHEN j.status = 'aborting' THEN 'aborted'
                      WHEN j.lost + 1 > %(max_lost)s THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN j.status = 'aborting' THEN 'aborted; its worker was lost'
                     WHEN j.lost + 1 > %(max_lost)s
                         THEN 'pgwerk: job lost with its worker ' || (j.lost + 1) || ' times'
                     ELSE j.error END,
        completed_at = CASE WHEN j.status = 'aborting' OR j.lost + 1 > %(max_lost)s
                            THEN {now} END,
        purge_at = CASE WHEN j.status = 'aborting' OR j.lost + 1 > %(max_lost)s
                        THEN {now} + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END) END,
        worker_id = NULL
    FROM lost WHERE j.id = lost.id
    RETURNING j.id, j.status, j.queue, j.function, j.has_dependents
),
freed AS (
    DELETE FROM {job_groups} g USING upd WHERE g.job_id = upd.id
),
{free_slots},
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue)
    FROM (SELECT queue FROM upd WHERE status = 'queued' UNION SELECT queue FROM slots) AS q
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM upd WHERE status <> 'queued' HAVING count(*) > 0
)
SELECT upd.id, upd.status, upd.has_dependents FROM upd
CROSS JOIN (SELECT count(*) FROM wake) AS w
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: sweep_release_groups
-- Group rows whose job is no longer active (a crash between claim and record).
DELETE FROM {job_groups} g
WHERE NOT EXISTS (SELECT 1 FROM {jobs} j
                  WHERE j.id = g.job_id AND j.status IN ('active', 'aborting'));

-- name: sweep_expire
-- Unstarted jobs past their ttl end 'expired' without running.
WITH gone AS (
    SELECT id FROM {jobs}
    WHERE expires_at < {now} AND expires_at IS NOT NULL
      AND status IN ('queued', 'scheduled', 'waiting')
    LIMIT 5000 FOR UPDATE SKIP LOCKED
),
upd AS (
    UPDATE {jobs} j SET status = 'expired', completed_at = {now},
        error = 'expired: not started within its ttl',
        purge_at = {now} + make_interval(secs => CASE WHEN j.failure_ttl IS NOT NULL THEN least(j.failure_ttl, 315576000) END)
    FROM gone WHERE j.id = gone.id
    RETURNING j.id, j.status, j.has_dependents
),
told AS (
    SELECT pg_notify(%(channel)s, CASE WHEN count(*) <= 300
        THEN 'd:' || string_agg(id::text, ',') ELSE 'd:*' END)
    FROM upd HAVING count(*) > 0
)
SELECT upd.id, upd.status, upd.has_dependents FROM upd
CROSS JOIN (SELECT count(*) FROM told) AS t;

-- name: sweep_prune
-- Delete ended jobs past their retention, a bounded batch at a time.
WITH gone AS (
    DELETE FROM {jobs} WHERE id IN (
        SELECT id FROM {jobs} WHERE purge_at < {now} ORDER BY purge_at LIMIT %(limit)s)
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: sweep_prune_batches
-- Delete batches that finished longer ago than %(keep)s seconds, a bounded batch at a time.
WITH gone AS (
    DELETE FROM {batches} WHERE id IN (
        SELECT id FROM {batches}
        WHERE finished_at < {now} - make_interval(secs => %(keep)s::float8)
        ORDER BY finished_at LIMIT %(limit)s)
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: sweep_forget_workers
-- Worker rows silent for a long time (their jobs were rescued long ago).
DELETE FROM {workers} WHERE heartbeat_at < {now} - make_interval(secs => %(older_than)s)
RETURNING id;

-- name: sweep_vacuum_due
-- Whether the jobs table has gathered enough dead rows to vacuum now: every claim and
-- completion leaves one behind, and a queue table must not wait for autovacuum's next
-- round (nor bloat without end where autovacuum is off).
SELECT coalesce(s.n_dead_tup > 10000 + 0.1 * s.n_live_tup
                AND coalesce(greatest(s.last_vacuum, s.last_autovacuum), '-infinity')
                    < now() - make_interval(secs => %(min_interval)s), false) AS due,
       s.n_dead_tup AS dead
FROM pg_stat_user_tables s WHERE s.relid = {jobs_regclass}::regclass;

-- name: sweep_vacuum
-- SKIP_LOCKED: never wait behind autovacuum, ANALYZE or CREATE INDEX CONCURRENTLY.
VACUUM (SKIP_LOCKED) {jobs};

-- name: queue_stats
-- Job counts per queue and status.
SELECT queue, status, count(*) AS count FROM {jobs} GROUP BY queue, status
ORDER BY queue, status;

-- name: truncate
-- Empty every table of the app (tests).
TRUNCATE {jobs}, {job_deps}, {job_groups}, {executions}, {workers}, {cron},
    {leases}, {batches}, {queue_limits};

-- name: queue_limit_set
-- Set, change or remove the limits of a queue (function '') or of one function's jobs in
-- it: only the parts whose set_* flag is true change, the others stay as the row has them.
-- A row left without any limit is deleted (an unlimited queue has no row). When a
-- concurrency limit starts, the jobs running now are counted (as this statement sees
-- them; the sweep recounts). Workers of the queue are told ('l:' notice): they claim with
-- job_claim_limited from then on, or again with job_claim.
WITH cur AS (
    SELECT * FROM {queue_limits}
    WHERE queue = %(queue)s AND function = %(function)s
    FOR UPDATE
),
want AS (
    SELECT CASE WHEN %(set_rate)s THEN %(rate_limit)s::int ELSE c.rate_limit END AS rate_limit,
        CASE WHEN %(set_rate)s THEN %(rate_period)s::float8 ELSE c.rate_period END
            AS rate_period,
        CASE WHEN %(set_concurrency)s THEN %(concurrency)s::int ELSE c.concurrency END
            AS concurrency,
        (SELECT count(*) FROM {jobs} j
         WHERE j.status IN ('active', 'aborting') AND j.queue = %(queue)s
           AND (%(function)s = '' OR j.function = %(function)s))::int AS running_now
    FROM (SELECT 1) AS one LEFT JOIN cur c ON true
),
gone AS (
    DELETE FROM {queue_limits} l USING want w
    WHERE l.queue = %(queue)s AND l.function = %(function)s
      AND w.rate_limit IS NULL AND w.concurrency IS NULL
),
put AS (
    INSERT INTO {queue_limits} AS l (queue, function, rate_limit, rate_period, concurrency,
        running)
    SELECT %(queue)s, %(function)s, w.rate_limit, w.rate_period, w.concurrency,
        CASE WHEN w.concurrency IS NOT NULL THEN w.running_now ELSE 0 END
    FROM want w WHERE w.rate_limit IS NOT NULL OR w.concurrency IS NOT NULL
    ON CONFLICT (queue, function) DO UPDATE SET
        rate_limit = CASE WHEN %(set_rate)s THEN excluded.rate_limit ELSE l.rate_limit END,
        rate_period = CASE WHEN %(set_rate)s THEN excluded.rate_period ELSE l.rate_period END,
        concurrency = CASE WHEN %(set_concurrency)s THEN excluded.concurrency
                           ELSE l.concurrency END,
        running = CASE WHEN NOT %(set_concurrency)s THEN l.running
                       WHEN excluded.concurrency IS NULL THEN 0
                       WHEN l.concurrency IS NULL THEN excluded.running
                       ELSE l.running END,
        updated_at = now()
    RETURNING l.queue
),
wake AS (
    SELECT pg_notify(%(channel)s, 'l:' || %(queue)s)
)
SELECT (SELECT count(*) FROM put) AS kept, (SELECT count(*) FROM wake) AS woken;

-- name: free_slots_part
-- Part of the statements that end or give back attempts (not a statement): the
-- concurrency slots held by the jobs of {ended} (that statement's CTE of them, with their
-- queue and function; see FREES_SLOTS in statements.py) are freed, the limits locked in key
-- order as the claim locks them; `slots` holds the queue of each limit freed.
limits AS MATERIALIZED (
    SELECT l.queue, l.function, e.n FROM {queue_limits} l
    JOIN (SELECT queue, function, count(*) AS n FROM {ended} GROUP BY queue, function) AS e
      ON e.queue = l.queue AND (l.function = '' OR l.function = e.function)
    WHERE l.concurrency IS NOT NULL
    ORDER BY l.queue, l.function
    FOR NO KEY UPDATE OF l
),
slots AS (
    UPDATE {queue_limits} l SET running = greatest(l.running - m.n, 0)
    FROM (SELECT queue, function, sum(n) AS n FROM limits GROUP BY queue, function) AS m
    WHERE l.queue = m.queue AND l.function = m.function
    RETURNING l.queue
)

-- name: queue_limits_exist
-- Whether any of the given queues has limits (a worker of such a queue claims with
-- job_claim_limited).
SELECT EXISTS (SELECT 1 FROM {queue_limits} WHERE queue = ANY(%(queues)s::text[]))
    AS limited;

-- name: queue_limits_free
-- Free the concurrency slots of jobs whose end was just recorded (one queue and function
-- per job), in the transaction that recorded it, and wake the workers of those queues.
-- A worker of a limited queue runs it after job_complete_many.
WITH ended AS (
    SELECT * FROM unnest(%(queues)s::text[], %(functions)s::text[]) AS e(queue, function)
),
{free_slots},
wake AS (
    SELECT pg_notify(%(channel)s, 'q:' || queue) FROM (SELECT DISTINCT queue FROM slots) AS q
)
SELECT (SELECT count(*) FROM slots) AS freed, (SELECT count(*) FROM wake) AS woken;

-- name: queue_limit_list
-- The limits (of one queue, or all), with what they hold now: the jobs started within
-- the current window of a rate limit, and the running ones of a concurrency limit.
SELECT l.queue, l.function, l.rate_limit, l.rate_period, l.concurrency,
    CASE WHEN l.concurrency IS NOT NULL THEN l.running END AS running,
    CASE WHEN l.rate_limit IS NOT NULL THEN (
        SELECT coalesce(sum(e.n), 0) FROM unnest(l.recent_at, l.recent_n) AS e(at, n)
        WHERE e.at > now() - make_interval(secs => l.rate_period))::int END AS recent,
    l.updated_at
FROM {queue_limits} l
WHERE %(queue)s::text IS NULL OR l.queue = %(queue)s
ORDER BY l.queue, l.function;

-- name: queue_limits_lock
-- The concurrency limits, locked in key order (as claims lock them) so that no claim
-- changes them while the next statement, in the same transaction, recounts them.
SELECT queue, function FROM {queue_limits} WHERE concurrency IS NOT NULL
ORDER BY queue, function
FOR NO KEY UPDATE;

-- name: queue_limits_recount
-- Each concurrency limit's count of running jobs set to the truth (a count drifts only
-- when a job row changes outside pgwerk's statements, or in the instant a limit starts);
-- the limits it corrected.
UPDATE {queue_limits} l SET running = c.n
FROM (SELECT m.queue, m.function, count(j.id)::int AS n
      FROM {queue_limits} m
      LEFT JOIN {jobs} j ON j.status IN ('active', 'aborting') AND j.queue = m.queue
           AND (m.function = '' OR j.function = m.function)
      WHERE m.concurrency IS NOT NULL
      GROUP BY m.queue, m.function) AS c
WHERE l.queue = c.queue AND l.function = c.function AND l.running <> c.n
RETURNING l.queue, l.function, l.running;

-- name: cron_lock
-- Try to become the one active cron scheduler: a session lock, held until the scheduler
-- stops or its connection dies (then another process takes over).
SELECT pg_try_advisory_lock(%(lock)s) AS leader;

-- name: cron_unlock
-- Give up the cron scheduler's leadership.
SELECT pg_advisory_unlock(%(lock)s) AS released;

-- name: lease_acquire
-- Take the named lease, or renew it: succeeds (returns a row) when the lease is free,
-- expired, or already held by this holder. The database's clock decides expiry.
INSERT INTO {leases} AS l (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder, expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE now() END
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING holder;

-- name: lease_release
-- Give up a lease this holder holds.
DELETE FROM {leases} WHERE name = %(name)s AND holder = %(holder)s;

-- name: cron_upsert
-- Record the schedules a process defines. Pause state and ticks stay as they are.
INSERT INTO {cron} AS c (name, function, schedule, options)
SELECT v.name, v.function, v.schedule, v.options::jsonb
FROM unnest(%(names)s::text[], %(functions)s::text[], %(schedules)s::text[],
            %(options)s::text[]) AS v(name, function, schedule, options)
ON CONFLICT (name) DO UPDATE SET function = excluded.function, schedule = excluded.schedule,
    options = excluded.options, updated_at = now()
WHERE (c.function, c.schedule, c.options)
    IS DISTINCT FROM (excluded.function, excluded.schedule, excluded.options);

-- name: cron_state
-- The database's clock and the pause flag and last tick of the given schedules (a row
-- with a NULL name when none exists yet).
SELECT n.now, c.name, c.paused, c.last_tick
FROM (SELECT now() AS now) AS n
LEFT JOIN {cron} c ON c.name = ANY(%(names)s::text[]);

-- name: cron_advance
-- Move schedules past the ticks a pass handled; never backwards (two leaders may race).
UPDATE {cron} c SET last_tick = greatest(c.last_tick, v.last_tick), next_tick = v.next_tick
FROM unnest(%(names)s::text[], %(last_ticks)s::timestamptz[], %(next_ticks)s::timestamptz[])
    AS v(name, last_tick, next_tick)
WHERE c.name = v.name;

-- name: cron_list
-- Every stored schedule.
SELECT name, function, schedule, paused, last_tick, next_tick, options, updated_at
FROM {cron} ORDER BY name;

-- name: cron_pause
-- Pause or resume a schedule. A resumed schedule goes on from now: the ticks it missed
-- while paused are not enqueued.
UPDATE {cron} SET paused = %(paused)s, updated_at = now(),
    last_tick = CASE WHEN %(paused)s THEN last_tick ELSE greatest(last_tick, now()) END
WHERE name = %(name)s
RETURNING name;

-- name: cron_delete
-- Forget one schedule.
DELETE FROM {cron} WHERE name = %(name)s RETURNING name;

-- name: admin_job_list
-- Jobs matching the admin filter, newest first, one page. The admin filter is the same in
-- the list, the count and the bulk actions, so that a count shown before a bulk action is
-- the set the action touches. A NULL parameter does not filter; a key ending in '*'
-- matches the keys that start with the rest; the age is measured from the end of the job,
-- or from its enqueueing while it has not ended.
SELECT * FROM {jobs}
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(function)s::text IS NULL OR function = %(function)s)
  AND (%(job_id)s::bigint IS NULL OR id = %(job_id)s)
  AND (%(batch_id)s::bigint IS NULL OR batch_id = %(batch_id)s)
  AND (%(key)s::text IS NULL OR key = %(key)s
       OR (right(%(key)s, 1) = '*' AND starts_with(key, left(%(key)s, -1))))
  AND (%(search)s::text IS NULL OR strpos(lower(payload), lower(%(search)s)) > 0)
  AND (%(older_than)s::float8 IS NULL OR coalesce(completed_at, enqueued_at)
       < now() - make_interval(secs => %(older_than)s::float8))
ORDER BY id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: admin_job_count
-- How many jobs match the admin filter.
SELECT count(*) AS total FROM {jobs}
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(function)s::text IS NULL OR function = %(function)s)
  AND (%(job_id)s::bigint IS NULL OR id = %(job_id)s)
  AND (%(batch_id)s::bigint IS NULL OR batch_id = %(batch_id)s)
  AND (%(key)s::text IS NULL OR key = %(key)s
       OR (right(%(key)s, 1) = '*' AND starts_with(key, left(%(key)s, -1))))
  AND (%(search)s::text IS NULL OR strpos(lower(payload), lower(%(search)s)) > 0)
  AND (%(older_than)s::float8 IS NULL OR coalesce(completed_at, enqueued_at)
       < now() - make_interval(secs => %(older_than)s::float8));

-- name: admin_job_select
-- Ids of the jobs matching the admin filter, for a bulk requeue or cancel (which then
-- re-check each job's status under a row lock).
SELECT id FROM {jobs}
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND status = ANY(%(statuses)s::text[])
  AND (%(function)s::text IS NULL OR function = %(function)s)
  AND (%(older_than)s::float8 IS NULL OR coalesce(completed_at, enqueued_at)
       < now() - make_interval(secs => %(older_than)s::float8))
ORDER BY id;

-- name: admin_job_purge
-- Delete ended jobs matching the admin filter. Running jobs are never deleted, whatever
-- statuses are passed.
WITH gone AS (
    DELETE FROM {jobs}
    WHERE status = ANY(%(statuses)s::text[]) AND status NOT IN ('active', 'aborting')
      AND (%(queue)s::text IS NULL OR queue = %(queue)s)
      AND (%(function)s::text IS NULL OR function = %(function)s)
      AND coalesce(completed_at, enqueued_at)
          < now() - make_interval(secs => coalesce(%(older_than)s::float8, 0))
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: admin_job_delete
-- Delete one job unless it is running (a running job is aborted instead). Answers with
-- the status the job had, and whether it was deleted; no row when there is no such job.
WITH target AS (
    SELECT id, status FROM {jobs} WHERE id = %(id)s FOR UPDATE
),
gone AS (
    DELETE FROM {jobs} j USING target
    WHERE j.id = target.id AND target.status NOT IN ('active', 'aborting')
    RETURNING j.id
)
SELECT target.status, EXISTS (SELECT 1 FROM gone) AS deleted FROM target;

-- name: admin_queue_latency
-- Per queue, the age in seconds of its oldest runnable job (queued, or scheduled and due).
SELECT queue, extract(epoch FROM now() - min(scheduled_at))::float8 AS oldest_queued_age
FROM {jobs}
WHERE status = 'queued' OR (status = 'scheduled' AND scheduled_at <= now())
GROUP BY queue;

-- name: admin_throughput
-- Attempts that ended per minute over the last N minutes (the current minute
-- last), zero-filled: from the job rows (their latest attempt) and the executions table
-- (earlier attempts). Jobs cancelled before they started are not attempts.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1),
                           date_trunc('minute', now()), interval '1 minute') AS minute
),
ended AS (
    SELECT date_trunc('minute', completed_at) AS minute, status = 'failed' AS failed
    FROM {jobs}
    WHERE completed_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
      AND started_at IS NOT NULL
    UNION ALL
    SELECT date_trunc('minute', finished_at), outcome = 'failed'
    FROM {executions}
    WHERE finished_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
)
SELECT m.minute, count(e.minute) AS processed, count(e.minute) FILTER (WHERE e.failed) AS failed
FROM minutes m LEFT JOIN ended e ON e.minute = m.minute
GROUP BY m.minute ORDER BY m.minute;

-- name: admin_job_dependents
-- The jobs waiting on (or that waited on) a job, with their status.
SELECT d.job_id AS id, d.allow_failure, j.status, j.function
FROM {job_deps} d JOIN {jobs} j ON j.id = d.job_id
WHERE d.depends_on = %(id)s ORDER BY d.job_id;

-- name: admin_function_list
-- The handlers that have jobs, for filter choices (the first few hundred).
SELECT DISTINCT function FROM {jobs} ORDER BY function LIMIT %(limit)s;
