-- How a plan's chat turns use the prompt cache: '5m' (default), '1h'
-- (dearer writes that last an hour) or 'off'.
ALTER TABLE plans ADD COLUMN prompt_caching TEXT NOT NULL DEFAULT '5m';
