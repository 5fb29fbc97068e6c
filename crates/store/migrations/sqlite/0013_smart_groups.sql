-- Smart groups (issue 16): a group with a case query keeps its members itself.
-- `query`: the query as saved, with group names resolved to ids (`group = 12`), so renaming a
-- group does not change what a smart group means; NULL for a plain group.
ALTER TABLE case_groups ADD COLUMN query TEXT;
-- When the members were last brought up to date (created, query edited, or a pass over the
-- project's written cases).
ALTER TABLE case_groups ADD COLUMN evaluated_at BIGINT;

-- `reminder_pending` becomes the queue of cases to look at again for reminders *and* smart
-- groups: a case written in a project with an active rule or a smart group goes in. A
-- membership change of a plain group does too (a query may say `group = …`); a smart group's
-- own changes do not: the pass that makes them looks at the smart groups in order of their
-- references, then at the rules, with the changes made.
DROP TRIGGER cases_reminder_insert;
DROP TRIGGER cases_reminder_update;
DROP TRIGGER members_reminder_insert;
DROP TRIGGER members_reminder_delete;
CREATE TRIGGER cases_reminder_insert AFTER INSERT ON cases
WHEN EXISTS (SELECT 1 FROM reminders WHERE project_id = NEW.project_id AND active = 1)
  OR EXISTS (SELECT 1 FROM case_groups WHERE project_id = NEW.project_id AND query IS NOT NULL)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id) VALUES (NEW.id, NEW.project_id);
END;
CREATE TRIGGER cases_reminder_update AFTER UPDATE ON cases
WHEN EXISTS (SELECT 1 FROM reminders WHERE project_id = NEW.project_id AND active = 1)
  OR EXISTS (SELECT 1 FROM case_groups WHERE project_id = NEW.project_id AND query IS NOT NULL)
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id) VALUES (NEW.id, NEW.project_id);
END;
CREATE TRIGGER members_reminder_insert AFTER INSERT ON case_group_members
WHEN (SELECT query IS NULL FROM case_groups WHERE id = NEW.group_id)
 AND (EXISTS (SELECT 1 FROM reminders r JOIN case_groups g ON g.project_id = r.project_id
              WHERE g.id = NEW.group_id AND r.active = 1)
      OR EXISTS (SELECT 1 FROM case_groups s JOIN case_groups g ON g.project_id = s.project_id
                 WHERE g.id = NEW.group_id AND s.query IS NOT NULL))
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id)
    SELECT NEW.case_pk, project_id FROM case_groups WHERE id = NEW.group_id;
END;
CREATE TRIGGER members_reminder_delete AFTER DELETE ON case_group_members
WHEN (SELECT query IS NULL FROM case_groups WHERE id = OLD.group_id)
 AND (EXISTS (SELECT 1 FROM reminders r JOIN case_groups g ON g.project_id = r.project_id
              WHERE g.id = OLD.group_id AND r.active = 1)
      OR EXISTS (SELECT 1 FROM case_groups s JOIN case_groups g ON g.project_id = s.project_id
                 WHERE g.id = OLD.group_id AND s.query IS NOT NULL))
BEGIN
  INSERT OR IGNORE INTO reminder_pending (case_pk, project_id)
    SELECT OLD.case_pk, project_id FROM case_groups WHERE id = OLD.group_id;
END;
-- A project's waiting cases, for bringing its smart groups up to date before a broadcast reads
-- them.
CREATE INDEX reminder_pending_project ON reminder_pending(project_id);
