-- The key the chat page gives each message it sends. A send the browser
-- lost before the reply began (Stop, a dropped connection) may still have
-- been stored; sent again with the same key, it replaces that turn rather
-- than storing the message twice.
ALTER TABLE messages ADD COLUMN turn_key TEXT;
CREATE UNIQUE INDEX messages_turn_key ON messages (turn_key, conversation_id);
