-- Reminders from case data (issue 15): rules, each case's schedule under a rule, the record of
-- every occurrence handled, and the queue of cases to re-evaluate.
CREATE TABLE reminders (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  -- JSON: the CONTRACT's reminder body (core::reminder::ReminderRule), checked when saved.
  definition TEXT NOT NULL,
  -- Copies of the definition's `active` and `case_type`, for the statements that select by them.
  active BIGINT NOT NULL,
  case_type TEXT NOT NULL,
  -- Bumped by every edit: the background evaluation of the rule's cases runs for one version.
  version BIGINT NOT NULL DEFAULT 1,
  -- The evaluation of the rule's cases: the last case row id done (NULL: not started), and
  -- when it finished (NULL: running).
  evaluated_through BIGINT,
  evaluated_at BIGINT,
  created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX reminders_project ON reminders(project_id, active);

-- One row a (rule, case) the rule has looked at: what is due next, or why nothing is.
CREATE TABLE reminder_schedules (
  reminder_id BIGINT NOT NULL REFERENCES reminders(id) ON DELETE CASCADE,
  case_pk BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  -- scheduled (next_at set), done (every occurrence handled), skipped (skip_reason: no_date,
  -- date_unreadable, time_zone_invalid), stopped (no longer matches, matches stop_query,
  -- closed or deleted).
  state TEXT NOT NULL,
  skip_reason TEXT,
  -- When the case started matching (occurrences before it were never due for it).
  matched_since BIGINT NOT NULL,
  -- The instant of the last occurrence handled (sent or missed), NULL before the first.
  handled_through BIGINT,
  next_occurrence BIGINT,
  next_at BIGINT,
  locked_until BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (reminder_id, case_pk)
);
CREATE INDEX reminder_schedules_due ON reminder_schedules(next_at) WHERE next_at IS NOT NULL;
CREATE INDEX reminder_schedules_case ON reminder_schedules(case_pk);

-- Every occurrence handled, once: the unique key is what makes racing workers send it once.
-- An occurrence is its scheduled instant (moving a case's date makes new occurrences).
CREATE TABLE reminder_occurrences (
  reminder_id BIGINT NOT NULL REFERENCES reminders(id) ON DELETE CASCADE,
  case_pk BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  due_at BIGINT NOT NULL,
  occurrence BIGINT NOT NULL,
  -- queued, missed, opted_out, no_phone, same_phone (another case's message to the number
  -- for this occurrence went already), survey_refused.
  outcome TEXT NOT NULL,
  phone TEXT,
  recorded_at BIGINT NOT NULL,
  PRIMARY KEY (reminder_id, case_pk, due_at)
);
CREATE INDEX reminder_occurrences_phone ON reminder_occurrences(reminder_id, due_at, phone);
CREATE INDEX reminder_occurrences_recorded ON reminder_occurrences(reminder_id, recorded_at);

-- Cases written since the rules last looked at them (filled by the triggers below, only in
-- projects with an active rule); the worker re-evaluates and deletes them.
CREATE TABLE reminder_pending (
  case_pk BIGINT PRIMARY KEY,
  project_id BIGINT NOT NULL
);

CREATE TRIGGER cases_reminder_insert AFTER INSERT ON cases
WHEN EXISTS (SELECT 1 FROM reminders WHERE project_id = NEW.project_id AND active = 1)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id) VALUES (NEW.id, NEW.project_id);
END;
CREATE TRIGGER cases_reminder_update AFTER UPDATE ON cases
WHEN EXISTS (SELECT 1 FROM reminders WHERE project_id = NEW.project_id AND active = 1)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id) VALUES (NEW.id, NEW.project_id);
END;
CREATE TRIGGER members_reminder_insert AFTER INSERT ON case_group_members
WHEN EXISTS (SELECT 1 FROM reminders r JOIN case_groups g ON g.project_id = r.project_id
             WHERE g.id = NEW.group_id AND r.active = 1)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id)
    SELECT NEW.case_pk, project_id FROM case_groups WHERE id = NEW.group_id;
END;
CREATE TRIGGER members_reminder_delete AFTER DELETE ON case_group_members
WHEN EXISTS (SELECT 1 FROM reminders r JOIN case_groups g ON g.project_id = r.project_id
             WHERE g.id = OLD.group_id AND r.active = 1)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id)
    SELECT OLD.case_pk, project_id FROM case_groups WHERE id = OLD.group_id;
END;

-- The rule a message was sent for.
ALTER TABLE messages ADD COLUMN reminder_id BIGINT;
CREATE INDEX messages_reminder ON messages(reminder_id, created_at) WHERE reminder_id IS NOT NULL;
