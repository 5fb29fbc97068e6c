-- SMS surveys (issue 13): the survey as written, one session per start of a survey for a case,
-- the link from a message to the session it belongs to, and inbound messages stored before
-- they are handled (a worker handles what a process that died left unhandled).
CREATE TABLE surveys (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  -- The trimmed name in lower case: unique per project (as case groups' names).
  name_key TEXT NOT NULL,
  -- JSON: the CONTRACT's survey body (core::survey::Survey), checked when saved.
  definition TEXT NOT NULL,
  created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX surveys_project ON surveys(project_id, id);
CREATE UNIQUE INDEX surveys_name ON surveys(project_id, name_key);
-- A session: the state of core::survey::session::SessionState in columns, the respondent, and
-- its timers. While its latest message waits in the outbox the timers are durations
-- (reminder_in_ms, expiry_in_ms) and the due instants are NULL; when the dispatcher is done with
-- that message (sent, failed or expired) the due instants are set from then. Every transition
-- increments `step` and clears the due instants, so a due time always belongs to the current step.
CREATE TABLE survey_sessions (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  survey_id BIGINT NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
  case_pk BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  -- The number it was started for (E.164): replies from it are its answers.
  phone TEXT NOT NULL,
  language_code TEXT,
  -- The gateway of its latest message (reminders go through it).
  gateway_id BIGINT,
  -- The broadcast occurrence that started it; NULL when started for one case.
  occurrence_id BIGINT,
  started_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
  -- 'active', 'completed', 'expired' or 'cancelled'
  status TEXT NOT NULL,
  -- 0-based; NULL once finished
  current_question BIGINT,
  attempts BIGINT NOT NULL DEFAULT 0,
  reminders_sent BIGINT NOT NULL DEFAULT 0,
  step BIGINT NOT NULL DEFAULT 0,
  -- JSON object: accepted answers by question key, normalised
  answers TEXT NOT NULL DEFAULT '{}',
  reason TEXT,
  reminder_in_ms BIGINT,
  expiry_in_ms BIGINT,
  reminder_due BIGINT,
  expiry_due BIGINT,
  -- When its latest message was queued: a reply from a number two active sessions share goes
  -- to the one asked most recently.
  asked_at BIGINT NOT NULL,
  started_at BIGINT NOT NULL,
  -- When it ended (completed, expired or cancelled).
  completed_at BIGINT,
  updated_at BIGINT NOT NULL
);
-- One active session per case per project.
CREATE UNIQUE INDEX survey_sessions_one_active ON survey_sessions(project_id, case_pk) WHERE status = 'active';
CREATE INDEX survey_sessions_phone ON survey_sessions(project_id, phone, asked_at) WHERE status = 'active';
CREATE INDEX survey_sessions_survey ON survey_sessions(survey_id, status, id);
-- A survey's sessions in id order (its responses export, its sessions listed newest first).
CREATE INDEX survey_sessions_survey_id ON survey_sessions(survey_id, id);
CREATE INDEX survey_sessions_case ON survey_sessions(case_pk, id);
CREATE INDEX survey_sessions_occurrence ON survey_sessions(occurrence_id, case_pk) WHERE occurrence_id IS NOT NULL;
CREATE INDEX survey_sessions_reminder ON survey_sessions(reminder_due) WHERE status = 'active' AND reminder_due IS NOT NULL;
CREATE INDEX survey_sessions_expiry ON survey_sessions(expiry_due) WHERE status = 'active' AND expiry_due IS NOT NULL;
-- A message of a session (sent by it, or a reply it took) and, for one it sent, the session's
-- step when it was queued. No foreign key, as for occurrence_id.
ALTER TABLE messages ADD COLUMN survey_session_id BIGINT;
ALTER TABLE messages ADD COLUMN survey_step BIGINT;
CREATE INDEX messages_survey_session ON messages(survey_session_id, id) WHERE survey_session_id IS NOT NULL;
-- When the inbound router handled an inbound message; NULL: stored, not handled yet.
ALTER TABLE messages ADD COLUMN handled_at BIGINT;
UPDATE messages SET handled_at = created_at WHERE direction = 'inbound';
CREATE INDEX messages_unhandled ON messages(project_id, phone, id) WHERE direction = 'inbound' AND handled_at IS NULL;
