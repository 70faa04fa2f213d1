-- Holds given back by calls that never left keyward, by the release's id,
-- written in the transaction that gives the hold back. A settlement retried
-- because its answer was lost (its COMMIT landed all the same) skips the
-- releases found here, so none is given back twice. Kept a day.
CREATE TABLE released_holds (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
CREATE INDEX released_holds_at ON released_holds (at);
