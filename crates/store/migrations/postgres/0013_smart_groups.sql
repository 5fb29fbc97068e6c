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
CREATE OR REPLACE FUNCTION reminder_pending_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM reminders WHERE project_id = NEW.project_id AND active = 1)
     OR EXISTS (SELECT 1 FROM case_groups WHERE project_id = NEW.project_id AND query IS NOT NULL) THEN
    -- An update, not DO NOTHING, when the case waits already: the writer then holds the row
    -- until it commits, so a worker cannot take the case (and read it as it was before this
    -- write) in between; a worker that holds it makes the writer wait, then queue it anew.
    INSERT INTO reminder_pending (case_pk, project_id) VALUES (NEW.id, NEW.project_id)
      ON CONFLICT (case_pk) DO UPDATE SET project_id = EXCLUDED.project_id;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION reminder_pending_member() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  m RECORD;
BEGIN
  IF TG_OP = 'DELETE' THEN m := OLD; ELSE m := NEW; END IF;
  INSERT INTO reminder_pending (case_pk, project_id)
    SELECT m.case_pk, g.project_id FROM case_groups g
    WHERE g.id = m.group_id AND g.query IS NULL
      AND (EXISTS (SELECT 1 FROM reminders r WHERE r.project_id = g.project_id AND r.active = 1)
           OR EXISTS (SELECT 1 FROM case_groups s
                      WHERE s.project_id = g.project_id AND s.query IS NOT NULL))
    ON CONFLICT (case_pk) DO UPDATE SET project_id = EXCLUDED.project_id;
  RETURN NULL;
END $$;
-- A project's waiting cases, for bringing its smart groups up to date before a broadcast reads
-- them.
CREATE INDEX reminder_pending_project ON reminder_pending(project_id);
