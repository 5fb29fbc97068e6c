-- Which occurrences of a (rule, case) were handled, by number within a series: the series is
-- the case's start date (a date rule) or the instant it started matching (an `immediately`
-- rule). While the series is the same, an occurrence whose number was handled is never due
-- again, whatever the rule's time or the case's zone became since; a new start date starts a
-- new series.
ALTER TABLE reminder_schedules ADD COLUMN handled_series TEXT;
ALTER TABLE reminder_schedules ADD COLUMN handled_occurrence BIGINT;

-- The queue of cases to look at again keyed by the row id itself (`INTEGER PRIMARY KEY`, one
-- b-tree), not a `BIGINT` key beside the row id (two): every case written in a project with an
-- active rule goes through it. The triggers are made again around the new table.
DROP TRIGGER cases_reminder_insert;
DROP TRIGGER cases_reminder_update;
DROP TRIGGER members_reminder_insert;
DROP TRIGGER members_reminder_delete;
CREATE TABLE reminder_pending_new (
  case_pk INTEGER PRIMARY KEY,
  project_id BIGINT NOT NULL
);
INSERT INTO reminder_pending_new (case_pk, project_id) SELECT case_pk, project_id FROM reminder_pending;
DROP TABLE reminder_pending;
ALTER TABLE reminder_pending_new RENAME TO reminder_pending;
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

-- Due rows are taken in the order of this index (soonest first, then by rule and case), so a
-- page of them is read off the index instead of sorting every due row for each page.
DROP INDEX reminder_schedules_due;
CREATE INDEX reminder_schedules_due ON reminder_schedules(next_at, reminder_id, case_pk)
  WHERE next_at IS NOT NULL;
