-- Keywords (issue 14): what an inbound message's first word selects, and the link from a
-- message to the keyword it matched (an inbound message) or answers (a reply sent by one).
CREATE TABLE keywords (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  -- The keyword folded as messages are compared (core::keyword::fold): unique per project.
  word_key TEXT NOT NULL,
  -- JSON: the CONTRACT's keyword body (core::keyword::Keyword), checked when saved.
  definition TEXT NOT NULL,
  created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX keywords_word ON keywords(project_id, word_key);
-- The keyword an inbound message matched, or the keyword whose reply an outbound one is. No
-- foreign key (as survey_session_id): deleting a keyword leaves its messages in the log.
ALTER TABLE messages ADD COLUMN keyword_id BIGINT;
-- The inbound message an automatic reply answers (the conversation view, the reply limit).
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
CREATE INDEX messages_keyword ON messages(keyword_id, created_at) WHERE keyword_id IS NOT NULL;
-- Automatic replies to a number, newest last: the per-number reply limit counts them.
CREATE INDEX messages_auto_reply ON messages(project_id, phone, created_at) WHERE reply_to IS NOT NULL;
