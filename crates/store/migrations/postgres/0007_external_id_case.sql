-- External IDs are matched ignoring case when no case has the identifier exactly (`gul-0020`
-- finds `GUL-0020`). Only ASCII letters are folded, on both engines alike: SQLite's LOWER folds
-- ASCII only, so PostgreSQL folds with translate() rather than its Unicode LOWER
-- (dialect::ascii_lower must write the same expression for the index to be used).
CREATE INDEX cases_external_id_lower ON cases(project_id,
  translate(external_id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'));
-- The case a group's history entry is about (a single add or removal), so that the history
-- names it (joined within the project when shown) instead of repeating what was typed.
ALTER TABLE case_group_history ADD COLUMN case_pk BIGINT;
