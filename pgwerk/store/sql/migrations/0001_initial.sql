-- The initial schema. Table, sequence and index names are placeholders composed for the
-- app's schema and prefix (see pgwerk/store/statements.py).

CREATE SEQUENCE IF NOT EXISTS {jobs_id_seq};

CREATE TABLE IF NOT EXISTS {jobs} (
    id              bigint PRIMARY KEY DEFAULT nextval({jobs_id_seq_regclass}),
    function        text NOT NULL,
    queue           text NOT NULL DEFAULT 'default',
    status          text NOT NULL CHECK (status IN ('scheduled', 'queued', 'waiting', 'active',
                        'aborting', 'complete', 'failed', 'aborted', 'expired')),
    priority        integer NOT NULL DEFAULT 0,
    payload         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 1,
    lost            integer NOT NULL DEFAULT 0,
    retry_intervals jsonb,
    scheduled_at    timestamptz NOT NULL DEFAULT now(),
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    heartbeat_at    timestamptz,
    expires_at      timestamptz,
    purge_at        timestamptz,
    key             text,
    group_key       text,
    meta            jsonb,
    result          text,
    error           text,
    worker_id       text,
    timeout         double precision,
    heartbeat       double precision,
    result_ttl      double precision,
    failure_ttl     double precision,
    failure_mode    text NOT NULL DEFAULT 'hold' CHECK (failure_mode IN ('hold', 'delete')),
    callbacks       jsonb,
    repeat          jsonb,
    has_dependents  boolean NOT NULL DEFAULT false
) WITH (fillfactor = 85,
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_insert_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 1);

ALTER SEQUENCE {jobs_id_seq} OWNED BY {jobs}.id;

-- The claim walks this index in ORDER BY order and stops after a few rows.
CREATE INDEX IF NOT EXISTS {jobs_claim_idx_name}
    ON {jobs} (queue, priority DESC, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS {jobs_scheduled_idx_name}
    ON {jobs} (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS {jobs_active_idx_name}
    ON {jobs} (worker_id) WHERE status IN ('active', 'aborting');
CREATE INDEX IF NOT EXISTS {jobs_waiting_idx_name}
    ON {jobs} (id) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS {jobs_expires_idx_name}
    ON {jobs} (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('queued', 'scheduled', 'waiting');
CREATE INDEX IF NOT EXISTS {jobs_purge_idx_name}
    ON {jobs} (purge_at) WHERE purge_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS {jobs_key_idx_name}
    ON {jobs} (key) WHERE key IS NOT NULL;

-- Only jobs enqueued with _depends_on write here.
CREATE TABLE IF NOT EXISTS {job_deps} (
    job_id          bigint NOT NULL REFERENCES {jobs} (id) ON DELETE CASCADE,
    depends_on      bigint NOT NULL,
    allow_failure   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX IF NOT EXISTS {job_deps_upstream_idx_name} ON {job_deps} (depends_on);

-- One row per group with an active job: the claim inserts it, the end of the attempt
-- removes it; the primary key is what keeps two jobs of a group from running at once.
CREATE TABLE IF NOT EXISTS {job_groups} (
    group_key       text PRIMARY KEY,
    job_id          bigint NOT NULL
);

-- Attempts that did not end the job (retried, lost with a worker, requeued by hand).
-- The job row itself describes its latest attempt.
CREATE TABLE IF NOT EXISTS {executions} (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES {jobs} (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    worker_id       text,
    started_at      timestamptz,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL,
    error           text
);
CREATE INDEX IF NOT EXISTS {executions_job_idx_name} ON {executions} (job_id);

CREATE TABLE IF NOT EXISTS {workers} (
    id              text PRIMARY KEY,
    hostname        text NOT NULL,
    pid             integer NOT NULL,
    queues          text[] NOT NULL,
    concurrency     integer NOT NULL,
    pool            text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_interval double precision NOT NULL DEFAULT 5,
    stopping        boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS {cron} (
    name            text PRIMARY KEY,
    function        text NOT NULL,
    schedule        text NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    last_tick       timestamptz,
    next_tick       timestamptz,
    options         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
