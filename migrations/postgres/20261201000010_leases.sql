-- Leases: one reservation row may stand for several calls. A busy user's
-- batch takes a few calls' worth of allowance more than it asked for, and
-- the instance admits the next calls against that in memory, without a
-- database round trip. The row holds what is counted in usage_daily (and
-- rate_buckets) but not yet settled: calls not yet admitted plus calls in
-- flight. Settling a call takes its share out of the row; the row goes
-- when nothing is left in it.

-- Requests the row still counts.
ALTER TABLE reservations ADD COLUMN requests BIGINT NOT NULL DEFAULT 1;
-- Until when (unix ms) the instance may still admit calls against the row;
-- NULL once it no longer does. Another instance refused while this is set
-- waits for the lease's end and asks again, so an unused lease never
-- turns a call away.
ALTER TABLE reservations ADD COLUMN open_until BIGINT;
CREATE INDEX reservations_open ON reservations (user_id) WHERE open_until IS NOT NULL;
