-- Flow control: rate and concurrency limits per queue, or per function within a queue,
-- enforced by the claim itself. A queue without a row here is unlimited and costs the
-- claim one probe of this (usually empty) table.
--
-- Rate: at most rate_limit jobs start in any window of rate_period seconds. The claims of
-- the last window are kept as (moment, count) pairs in recent_at / recent_n, oldest first;
-- a claim less than a hundredth of the window after recent_since (when the last pair
-- began) joins the last pair, whose moment becomes the later one, so a window holds at most
-- about a hundred pairs and a pair never counts for less time than its claims.
-- Concurrency: at most `concurrency` jobs active at once; `running` counts them (the claim
-- adds, every statement that ends an active job subtracts, the sweep recounts). It is kept
-- only while `concurrency` is set.
CREATE TABLE IF NOT EXISTS {queue_limits} (
    queue           text NOT NULL,
    function        text NOT NULL DEFAULT '',
    rate_limit      integer CHECK (rate_limit > 0),
    rate_period     double precision CHECK (rate_period > 0),
    concurrency     integer CHECK (concurrency > 0),
    running         integer NOT NULL DEFAULT 0,
    recent_at       timestamptz[] NOT NULL DEFAULT '{{}}',
    recent_n        integer[] NOT NULL DEFAULT '{{}}',
    recent_since    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, function),
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL)),
    CHECK (rate_limit IS NOT NULL OR concurrency IS NOT NULL)
);
